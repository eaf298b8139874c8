//! Firebase Cloud Messaging, HTTP v1: an OAuth2 access token from the service account
//! (JWT-bearer grant, RFC 7523), cached until shortly before it expires, then
//! `projects/{id}/messages:send`.

use super::keys::JwtKey;
use super::{Delivery, Kind, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a service-account JSON file that FCM needs.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

/// Sends through FCM with one service account.
pub struct Fcm {
    key: JwtKey,
    key_id: String,
    client_email: String,
    token_uri: String,
    send_url: String,
    ttl_secs: u64,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// Reads the service-account file at `path`; `base_url` is the FCM API's.
    pub fn from_file(path: &str, base_url: &str, ttl_secs: u64) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the FCM service account {path}: {e}"))?;
        let account: ServiceAccount = serde_json::from_str(&text)
            .map_err(|e| format!("{path} is not a service-account JSON file: {e}"))?;
        Ok(Self {
            key: JwtKey::rs256_from_pem(&account.private_key)?,
            key_id: account.private_key_id,
            client_email: account.client_email,
            token_uri: account.token_uri,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                base_url.trim_end_matches('/'),
                account.project_id
            ),
            ttl_secs,
            token: Mutex::new(None),
        })
    }

    /// Sends one notification to a registration token.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        token: &str,
        delivery: &Delivery<'_>,
    ) -> Outcome {
        let access = match self.access_token(http).await {
            Ok(access) => access,
            Err(outcome) => return outcome,
        };
        let mut message = json!({
            "token": token,
            "data": {"confab": String::from_utf8_lossy(delivery.payload)},
            "android": {
                "collapse_key": delivery.topic,
                // Android lowers the priority of apps whose high-priority messages show
                // nothing, as a close does.
                "priority": if delivery.kind == Kind::Close { "NORMAL" } else { "HIGH" },
                "ttl": format!("{}s", self.ttl_secs),
            },
        });
        // A new message is shown by the system (tagged, so it replaces the conversation's
        // notification). An update or a close goes as data only: the app replaces the
        // notification with that tag without alerting again, or cancels it.
        if delivery.kind == Kind::New {
            message["notification"] = json!({"title": delivery.title, "body": delivery.body});
            message["android"]["notification"] =
                json!({"tag": delivery.topic, "notification_count": delivery.badge});
        }
        let body = json!({ "message": message });
        let sent = http
            .post(&self.send_url)
            .bearer_auth(access)
            .json(&body)
            .send()
            .await;
        super::outcome_of(sent, |status, text| match status.as_u16() {
            404 => Some(Outcome::Gone),
            _ if text.contains("UNREGISTERED") => Some(Outcome::Gone),
            401 => {
                // The token was revoked or expired early: fetch a new one next time.
                if let Ok(mut cached) = self.token.try_lock() {
                    *cached = None;
                }
                Some(Outcome::Retry(None))
            }
            _ => None,
        })
        .await
    }

    async fn access_token(&self, http: &reqwest::Client) -> Result<String, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let iat = confab_proto::Timestamp::now().millis() / 1000;
        let assertion = self
            .key
            .sign(
                Some(&self.key_id),
                &Claims {
                    iss: &self.client_email,
                    scope: SCOPE,
                    aud: &self.token_uri,
                    iat,
                    exp: iat + 3600,
                },
            )
            .map_err(Outcome::Rejected)?;
        let response = http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "FCM token request failed");
                Outcome::Retry(None)
            })?;
        if !response.status().is_success() {
            let status = response.status();
            tracing::warn!(%status, "the FCM OAuth token exchange failed; check the service account");
            return Err(Outcome::Retry(super::retry_after(&response)));
        }
        let token: TokenResponse = response.json().await.map_err(|e| {
            tracing::debug!(error = %e, "FCM token request failed");
            Outcome::Retry(None)
        })?;
        // Renewed a minute early, so a token never expires on the way.
        let until = Instant::now() + Duration::from_secs(token.expires_in.saturating_sub(60));
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }
}
