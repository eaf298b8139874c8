//! The push providers (Web Push, FCM, APNs), the HTTP clients they share, and what an
//! attempt came to. `Providers::send` is the one way out: it re-checks Web Push endpoints,
//! skips hosts that are backed off (`hosts.rs`), and gives up at the job's deadline.

mod apns;
mod fcm;
mod hosts;
mod keys;
mod webpush;

pub use keys::vapid_pem;

use super::notification::Kind;
use super::safety::{self, check_endpoint};
use crate::config::Config;
use crate::store::{PushTarget, SubscriptionRecord};
use apns::Apns;
use fcm::Fcm;
use hosts::Hosts;
use keys::JwtKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use webpush::WebPush;

/// A provider's whole answer is not needed to classify it; at most this much is read.
const MAX_ANSWER: usize = 8 * 1024;

/// What one attempt to push to one subscription came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took it.
    Sent,
    /// The provider says the subscription no longer exists: delete it.
    Gone,
    /// Try again later: a 5xx or 429, or a host backed off, with how long the provider (or
    /// the backoff) asks to wait.
    Retry(Option<Duration>),
    /// No answer: a network error or the deadline passed. Retried, and counted against the
    /// host, which is backed off when it keeps failing.
    Unreachable,
    /// Refused for good (a bad request); logged, not retried.
    Rejected(String),
}

/// What every provider gets for one notification.
pub struct Delivery<'a> {
    /// The JSON payload (`Notification`), within every provider's size limit.
    pub payload: &'a [u8],
    /// The collapse key and notification tag: one per conversation.
    pub topic: &'a str,
    /// Show and alert, replace quietly, or close the notification under `topic`.
    pub kind: Kind,
    /// The notification's title, for providers that show it themselves (empty to close).
    pub title: &'a str,
    /// The notification's text.
    pub body: &'a str,
    /// The user's unread messages in all conversations: the number on the app's icon.
    pub badge: u64,
}

/// Every configured provider, and the health of the hosts they call.
pub struct Providers {
    webpush: WebPush,
    fcm: Option<Fcm>,
    apns: Option<Apns>,
    http: reqwest::Client,
    http2: reqwest::Client,
    hosts: Hosts,
    allow_http: bool,
}

impl Providers {
    /// Reads the VAPID key (`vapid_pem`), FCM and APNs credentials, builds the clients.
    pub fn new(config: &Config, vapid_pem: &str) -> Result<Self, String> {
        let vapid = JwtKey::es256_from_pem(vapid_pem)
            .map_err(|e| format!("push_vapid_private_key: {e}"))?;
        let webpush = WebPush::new(
            vapid,
            config.push_vapid_subject.clone(),
            config.push_ttl_secs,
        )?;
        let fcm = (!config.push_fcm_service_account.is_empty())
            .then(|| {
                Fcm::from_file(
                    &config.push_fcm_service_account,
                    &config.push_fcm_url,
                    config.push_ttl_secs,
                )
            })
            .transpose()?;
        let apns = (!config.push_apns_key_file.is_empty())
            .then(|| {
                Apns::from_file(
                    &config.push_apns_key_file,
                    config.push_apns_key_id.clone(),
                    config.push_apns_team_id.clone(),
                    config.push_apns_topic.clone(),
                    &config.push_apns_url,
                    config.push_ttl_secs,
                )
            })
            .transpose()?;
        let timeout = Duration::from_millis(config.push_timeout_ms);
        let client = |http2: bool| {
            let mut builder = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would make the connection itself, past the address check below.
                .no_proxy()
                .user_agent(concat!("confab/", env!("CARGO_PKG_VERSION")));
            if !config.push_allow_http_endpoints {
                builder = builder.dns_resolver(Arc::new(safety::PublicOnly));
            }
            if http2 {
                builder = builder.http2_prior_knowledge();
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the push HTTP client: {e}"))
        };
        Ok(Self {
            webpush,
            fcm,
            apns,
            http: client(false)?,
            // APNs speaks only HTTP/2. FCM's and the push services' hosts are public, but
            // APNs's is configurable too, so it goes through the same resolver.
            http2: client(true)?,
            hosts: Hosts::default(),
            allow_http: config.push_allow_http_endpoints,
        })
    }

    /// The VAPID public key, base64url.
    pub fn vapid_public_key(&self) -> &str {
        self.webpush.public_key()
    }

    /// Are FCM credentials configured?
    pub fn has_fcm(&self) -> bool {
        self.fcm.is_some()
    }

    /// Is an APNs key configured?
    pub fn has_apns(&self) -> bool {
        self.apns.is_some()
    }

    /// Pushes `delivery` to one subscription, giving up at `deadline`.
    pub async fn send(
        &self,
        subscription: &SubscriptionRecord,
        delivery: &Delivery<'_>,
        deadline: Instant,
    ) -> Outcome {
        let host = match &subscription.target {
            PushTarget::WebPush { endpoint, .. } => {
                // Checked again: a subscription saved under other settings must not slip by.
                if let Some(problem) = check_endpoint(endpoint, self.allow_http) {
                    return Outcome::Rejected(problem);
                }
                reqwest::Url::parse(endpoint)
                    .ok()
                    .and_then(|u| {
                        u.host_str()
                            .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(443)))
                    })
                    .unwrap_or_default()
            }
            PushTarget::Fcm(_) => "fcm".to_owned(),
            PushTarget::Apns(_) => "apns".to_owned(),
        };
        if let Some(wait) = self.hosts.backed_off(&host) {
            return Outcome::Retry(Some(wait));
        }
        let outcome = tokio::time::timeout_at(deadline, self.attempt(subscription, delivery))
            .await
            .unwrap_or(Outcome::Unreachable);
        self.hosts.record(&host, outcome != Outcome::Unreachable);
        outcome
    }

    async fn attempt(&self, subscription: &SubscriptionRecord, delivery: &Delivery<'_>) -> Outcome {
        match &subscription.target {
            PushTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                self.webpush
                    .send(&self.http, endpoint, p256dh, auth, delivery)
                    .await
            }
            PushTarget::Fcm(token) => match &self.fcm {
                Some(fcm) => fcm.send(&self.http, token, delivery).await,
                None => Outcome::Rejected("FCM is not configured any more".into()),
            },
            PushTarget::Apns(token) => match &self.apns {
                Some(apns) => apns.send(&self.http2, token, delivery).await,
                None => Outcome::Rejected("APNs is not configured any more".into()),
            },
        }
    }
}

/// Classifies a provider's answer; `special` handles provider-specific statuses first.
async fn outcome_of(
    sent: reqwest::Result<reqwest::Response>,
    special: impl FnOnce(reqwest::StatusCode, &str) -> Option<Outcome>,
) -> Outcome {
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "push request failed");
            return Outcome::Unreachable;
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let after = retry_after(&response);
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.extend_from_slice(&chunk);
        if text.len() >= MAX_ANSWER {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    if let Some(outcome) = special(status, &text) {
        return outcome;
    }
    if status.as_u16() == 429 || status.is_server_error() {
        Outcome::Retry(after)
    } else {
        Outcome::Rejected(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from push services and ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}
