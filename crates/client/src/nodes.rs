//! The nodes of a cluster this connection knows, and asking them where to connect. The
//! list starts with the URL the app gave and grows with every discovery answer and
//! `reconnect` frame, so when the node in use dies there are others to ask.

use crate::http::Client;
use rand::seq::SliceRandom;
use std::time::Duration;

/// Nodes remembered at most.
const KNOWN_MAX: usize = 32;
/// The best nodes of an answer, shuffled among themselves.
const SPREAD: usize = 3;
/// How long one node may take to answer discovery.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Known node base URLs (HTTP), most recently offered first.
#[derive(Debug, Clone)]
pub(crate) struct Nodes {
    known: Vec<String>,
}

impl Nodes {
    /// Knows only `base`.
    pub(crate) fn new(base: &str) -> Self {
        Self {
            known: vec![base.trim_end_matches('/').to_owned()],
        }
    }

    /// Remembers `urls` (best first) ahead of the others.
    pub(crate) fn learn(&mut self, urls: &[String]) {
        let mut known: Vec<String> = urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        for url in self.known.drain(..) {
            if !known.contains(&url) {
                known.push(url);
            }
        }
        known.truncate(KNOWN_MAX);
        self.known = known;
    }

    /// Asks the known nodes, in turn, for the cluster's live nodes other than `failed`;
    /// the first useful answer, best first (the very best few shuffled, so the clients of a
    /// dead node do not all land on one), or `None` when no node has one. A lone node's
    /// answer naming itself is no address to go to (its `public_url` may not be how this
    /// client reaches it), so the caller keeps the URL it has.
    pub(crate) async fn discover(&mut self, failed: Option<&str>) -> Option<Vec<String>> {
        for base in self.known.clone() {
            if Some(base.as_str()) == failed {
                continue;
            }
            let Ok(client) = Client::new(&base) else {
                continue;
            };
            let Ok(Ok(servers)) = tokio::time::timeout(ASK_TIMEOUT, client.discovery()).await
            else {
                continue;
            };
            let mut urls: Vec<String> = servers
                .into_iter()
                .map(|s| s.url.trim_end_matches('/').to_owned())
                .filter(|u| Some(u.as_str()) != failed)
                .collect();
            // At the start (nothing failed), one node is not a cluster to choose from.
            if urls.is_empty() || (failed.is_none() && urls.len() < 2) {
                continue;
            }
            let top = urls.len().min(SPREAD);
            urls[..top].shuffle(&mut rand::rng());
            self.learn(&urls);
            return Some(urls);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_puts_the_offered_first_and_forgets_nothing_below_the_cap() {
        let mut nodes = Nodes::new("http://a/");
        nodes.learn(&["http://b".into(), "http://a".into()]);
        assert_eq!(nodes.known, ["http://b", "http://a"]);
        nodes.learn(&["http://c/".into()]);
        assert_eq!(nodes.known, ["http://c", "http://b", "http://a"]);
        let many: Vec<String> = (0..40).map(|i| format!("http://n{i}")).collect();
        nodes.learn(&many);
        assert_eq!(nodes.known.len(), KNOWN_MAX);
    }
}
