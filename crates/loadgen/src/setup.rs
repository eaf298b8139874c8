//! Making the users, devices and conversations a scenario needs, through the SDK's HTTP
//! [`Client`], with bounded parallelism, retries of what the server says is retryable, and
//! a progress bar on stderr.

use anyhow::Context;
use confab_client::{Client, ConversationId, ErrorCode, UserId};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;
use std::future::Future;
use std::time::{Duration, Instant};

/// The password of every user the load generator makes.
const PASSWORD: &str = "loadgen-password";
/// Tries of one setup request that keeps failing in a retryable way.
const MAX_ATTEMPTS: u32 = 8;
/// A `retry_after` longer than this means the server's limits are set for people, not for
/// a benchmark: give up with a hint instead of waiting.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Mean login time above which the run warns that password hashing is expensive.
const SLOW_LOGIN: Duration = Duration::from_millis(50);

/// One logged-in device: whose it is and its token.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user.
    pub user_id: UserId,
    /// The username.
    pub username: String,
    /// The device's bearer token.
    pub token: String,
}

/// The setup helper of one run: an anonymous SDK client and the run's unique tag.
#[derive(Debug, Clone)]
pub struct Setup {
    anon: Client,
    http: reqwest::Client,
    concurrency: usize,
    quiet: bool,
    tag: String,
}

impl Setup {
    /// A helper for the server at `base`, with at most `concurrency` requests in flight.
    pub fn new(base: &str, concurrency: usize, quiet: bool) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(concurrency)
            .build()
            .context("building the HTTP client")?;
        let anon = Client::with_http_client(base, http.clone()).context("--url")?;
        Ok(Self {
            anon,
            http,
            concurrency: concurrency.max(1),
            quiet,
            tag: run_tag(),
        })
    }

    /// The plain HTTP client (for `/metrics`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Unique to this run: in usernames and `client_msg_id`s, so runs never collide.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A helper for a scenario's common options, once the server has answered.
    pub async fn for_run(common: &crate::cli::Common) -> anyhow::Result<Self> {
        let setup = Self::new(
            common.first_url(),
            usize::from(common.setup_concurrency),
            common.quiet,
        )?;
        setup.check_server().await?;
        Ok(setup)
    }

    /// Fails early, with a clear message, when nothing answers at the URL.
    pub async fn check_server(&self) -> anyhow::Result<()> {
        self.anon.healthz().await.with_context(|| {
            format!(
                "the server at {} does not answer /healthz",
                self.anon.base_url()
            )
        })
    }

    /// A progress bar on stderr (hidden when stderr is not a terminal or with --quiet).
    pub fn progress(&self, label: &str, len: u64) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        };
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        bar
    }

    /// Makes `count` users and logs each in once (its first device), in order.
    pub async fn users(&self, count: usize) -> anyhow::Result<Vec<Login>> {
        let started = Instant::now();
        let logins = self
            .bounded("users", (0..count).collect(), |i| {
                let this = self.clone();
                async move { this.make_user(i).await }
            })
            .await?;
        self.warn_if_slow(started, count);
        Ok(logins)
    }

    /// One more device for each user in `users`, in order (a user may appear many times).
    pub async fn logins(&self, users: Vec<Login>) -> anyhow::Result<Vec<Login>> {
        let count = users.len();
        let started = Instant::now();
        let logins = self
            .bounded("logins", users, |user| {
                let this = self.clone();
                async move { this.login(&user.username).await }
            })
            .await?;
        self.warn_if_slow(started, count);
        Ok(logins)
    }

    /// The direct conversation of each pair `(first, second)`, made by `first`.
    pub async fn directs(
        &self,
        pairs: Vec<(Login, UserId)>,
    ) -> anyhow::Result<Vec<ConversationId>> {
        self.bounded("conversations", pairs, |(first, second)| {
            let client = self.anon.with_token(first.token);
            async move { retry(|| client.direct(second)).await.map(|c| c.id) }
        })
        .await
    }

    /// Groups, each made by its `admin` with `members` (the admin excluded).
    pub async fn groups(
        &self,
        groups: Vec<(Login, Vec<UserId>)>,
    ) -> anyhow::Result<Vec<ConversationId>> {
        let tag = self.tag.clone();
        self.bounded("groups", groups, move |(admin, members)| {
            let client = self.anon.with_token(admin.token);
            let title = format!("loadgen {tag}");
            async move {
                retry(|| client.create_group(&title, &members))
                    .await
                    .map(|c| c.id)
            }
        })
        .await
    }

    /// Signs up user `i` of this run and logs it in. A conflict on a retried signup means
    /// the first try got through.
    async fn make_user(&self, i: usize) -> confab_client::Result<Login> {
        let username = format!("lg{}{}", self.tag, i);
        let mut attempt = 0;
        loop {
            match self.anon.signup(&username, PASSWORD, None).await {
                Ok(_) => break,
                Err(e) if attempt > 0 && e.code() == Some(ErrorCode::Conflict) => break,
                Err(e) => {
                    attempt += 1;
                    backoff(&e, attempt).await?;
                    if attempt >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
        self.login(&username).await
    }

    async fn login(&self, username: &str) -> confab_client::Result<Login> {
        let login = retry(|| self.anon.login(username, PASSWORD, Some("loadgen"))).await?;
        Ok(Login {
            user_id: login.user.id,
            username: username.to_owned(),
            token: login.token,
        })
    }

    /// Runs `f` on every item with at most `concurrency` in flight, with a progress bar;
    /// the answers in the items' order. The first failure ends the step.
    async fn bounded<I, T, F, Fut>(
        &self,
        label: &str,
        items: Vec<I>,
        f: F,
    ) -> anyhow::Result<Vec<T>>
    where
        F: Fn(I) -> Fut,
        Fut: Future<Output = confab_client::Result<T>>,
    {
        let bar = self.progress(label, items.len() as u64);
        let started = Instant::now();
        let total = items.len();
        let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(total).collect();
        let mut answers = futures_util::stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let fut = f(item);
                async move { (i, fut.await) }
            })
            .buffer_unordered(self.concurrency);
        while let Some((i, answer)) = answers.next().await {
            match answer {
                Ok(v) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(v);
                    }
                    bar.inc(1);
                }
                Err(e) => {
                    bar.abandon();
                    return Err(explain(e)).with_context(|| format!("setup step `{label}`"));
                }
            }
        }
        bar.finish_and_clear();
        if !self.quiet && total > 0 {
            eprintln!(
                "setup: {total} {label} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        out.into_iter()
            .collect::<Option<Vec<T>>>()
            .with_context(|| format!("setup step `{label}` lost an answer"))
    }

    fn warn_if_slow(&self, started: Instant, count: usize) {
        let Ok(count) = u32::try_from(count) else {
            return;
        };
        if count == 0 {
            return;
        }
        // Requests run `concurrency` at a time: the mean time of one is about this.
        let parallel = u32::try_from(self.concurrency).unwrap_or(1).min(count);
        let each = started.elapsed() * parallel / count;
        if each > SLOW_LOGIN {
            eprintln!(
                "setup: logins take about {} ms each: is the server busy, or hashing passwords \
                 at full cost? For benchmarks start it with CONFAB_PASSWORD_HASH_MEMORY_KIB=64 \
                 CONFAB_PASSWORD_HASH_ITERATIONS=1",
                each.as_millis()
            );
        }
    }
}

/// A random tag of 6 lowercase letters and digits.
fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Calls `make` until it succeeds, fails in a way that is not retryable, or runs out of
/// tries.
async fn retry<T, Fut>(mut make: impl FnMut() -> Fut) -> confab_client::Result<T>
where
    Fut: Future<Output = confab_client::Result<T>>,
{
    let mut attempt = 0;
    loop {
        match make().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                attempt += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(e);
                }
                backoff(&e, attempt).await?;
            }
        }
    }
}

/// Waits before try `attempt + 1` of a failed call; the error back when it is not worth
/// retrying.
async fn backoff(e: &confab_client::Error, attempt: u32) -> confab_client::Result<()> {
    if !e.is_retryable() {
        return Err(clone_error(e));
    }
    let asked = e.retry_after().unwrap_or_default();
    if asked > MAX_RETRY_AFTER {
        return Err(clone_error(e));
    }
    let exp = Duration::from_millis(50u64 << attempt.min(6));
    tokio::time::sleep(asked.max(exp)).await;
    Ok(())
}

/// The SDK's error is not `Clone`; keep what matters for the report.
fn clone_error(e: &confab_client::Error) -> confab_client::Error {
    match e {
        confab_client::Error::Api {
            status,
            code,
            message,
            retry_after_ms,
        } => confab_client::Error::Api {
            status: *status,
            code: *code,
            message: message.clone(),
            retry_after_ms: *retry_after_ms,
        },
        other => confab_client::Error::UnexpectedStatus {
            status: other.status().unwrap_or(0),
            body: other.to_string(),
        },
    }
}

/// The error, with what to change when the server's limits are the cause.
fn explain(e: confab_client::Error) -> anyhow::Error {
    let hint = match e.code() {
        Some(ErrorCode::RateLimited) => Some(
            "the server rate-limits setup: start it with CONFAB_AUTH_RATE_PER_MIN=1000000 \
             (and CONFAB_SEND_RATE_PER_SEC=1000000 CONFAB_SEND_BURST=1000000)",
        ),
        Some(ErrorCode::Overloaded) => Some(
            "the server is overloaded: raise its limits or slow the setup (--setup-concurrency)",
        ),
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::Error::new(e).context(hint),
        None => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_make_valid_usernames() {
        let tag = run_tag();
        assert_eq!(tag.len(), 6);
        assert!(confab_proto::limits::valid_username(&format!(
            "lg{tag}{}",
            usize::MAX
        )));
    }
}
