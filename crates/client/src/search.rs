//! `GET /v1/search`: full-text search over what the caller may see.

use crate::error::Result;
use crate::http::Client;
use confab_proto::{ConversationId, SearchResponse};
use reqwest::Method;

/// What to search for, where, and which page.
///
/// ```no_run
/// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
/// use confab_client::SearchQuery;
/// let first = client.search(SearchQuery::new(r#""north gate" meet*"#)).await?;
/// if let Some(cursor) = first.next_cursor {
///     let _second = client.search(SearchQuery::new(r#""north gate" meet*"#).cursor(cursor)).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// The query: words, `"phrases"` and `prefix*` (docs/protocol.md, "Search").
    pub q: String,
    /// Within one conversation.
    pub conversation_id: Option<ConversationId>,
    /// Best match first rather than newest first.
    pub by_relevance: bool,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// Page size; the server caps it at 50.
    pub limit: Option<u32>,
}

impl SearchQuery {
    /// The newest matches of `q` in every conversation.
    pub fn new(q: impl Into<String>) -> Self {
        Self {
            q: q.into(),
            ..Self::default()
        }
    }

    /// Only in conversation `id`.
    pub fn within(mut self, id: ConversationId) -> Self {
        self.conversation_id = Some(id);
        self
    }

    /// Best match first.
    pub fn by_relevance(mut self) -> Self {
        self.by_relevance = true;
        self
    }

    /// The page after the one that gave `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("q", Some(self.q.clone())),
            (
                "conversation_id",
                self.conversation_id.map(|id| id.to_string()),
            ),
            ("order", self.by_relevance.then(|| "relevance".to_owned())),
            ("cursor", self.cursor.clone()),
            ("limit", self.limit.map(|v| v.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

impl Client {
    /// `GET /v1/search`: a page of the messages the caller may see that match, each with a
    /// snippet; `invalid_request` for a query with no words (or a bad cursor),
    /// `rate_limited` past the server's `search_rate_per_min`.
    pub async fn search(&self, query: SearchQuery) -> Result<SearchResponse> {
        let rb = self
            .request(Method::GET, "/v1/search")
            .query(&query.pairs());
        self.json(rb).await
    }
}
