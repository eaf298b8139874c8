//! Apple Push Notification service over HTTP/2 with token authentication: an ES256
//! provider token (team id, key id, the `.p8` key), reused for 50 minutes (Apple refuses
//! tokens older than an hour and ones renewed more often than every 20 minutes).

use super::keys::JwtKey;
use super::{Delivery, Kind, Outcome};
use serde::Serialize;
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// Sends through APNs with one signing key.
pub struct Apns {
    key: JwtKey,
    key_id: String,
    team_id: String,
    topic: String,
    base_url: String,
    ttl_secs: u64,
    token: Mutex<Option<(String, Instant)>>,
}

impl Apns {
    /// Reads the `.p8` key at `key_file`.
    pub fn from_file(
        key_file: &str,
        key_id: String,
        team_id: String,
        topic: String,
        base_url: &str,
        ttl_secs: u64,
    ) -> Result<Self, String> {
        let pem = std::fs::read_to_string(key_file)
            .map_err(|e| format!("cannot read the APNs key {key_file}: {e}"))?;
        Ok(Self {
            key: JwtKey::es256_from_pem(&pem)?,
            key_id,
            team_id,
            topic,
            base_url: base_url.trim_end_matches('/').to_owned(),
            ttl_secs,
            token: Mutex::new(None),
        })
    }

    /// Sends one alert to a device token. `http` must speak HTTP/2.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        device_token: &str,
        delivery: &Delivery<'_>,
    ) -> Outcome {
        let token = match self.provider_token() {
            Ok(token) => token,
            Err(e) => return Outcome::Rejected(e),
        };
        let payload: serde_json::Value =
            serde_json::from_slice(delivery.payload).unwrap_or(serde_json::Value::Null);
        // An alert replaces the one with the same collapse id; an update is passive.
        // A close is a background push: the app removes the delivered notification.
        let (aps, push_type, priority) = match delivery.kind {
            Kind::New | Kind::Update => {
                let mut aps = json!({
                    "alert": {"title": delivery.title, "body": delivery.body},
                    "thread-id": delivery.topic,
                });
                if delivery.kind == Kind::New {
                    aps["sound"] = json!("default");
                } else {
                    // Into the notification list without lighting up the screen.
                    aps["interruption-level"] = json!("passive");
                }
                (aps, "alert", "10")
            }
            Kind::Close => (json!({"content-available": 1}), "background", "5"),
        };
        let mut aps = aps;
        aps["badge"] = json!(delivery.badge);
        let body = json!({"aps": aps, "confab": payload});
        let expiration = confab_proto::Timestamp::now().millis() / 1000 + self.ttl_secs as i64;
        let sent = http
            .post(format!("{}/3/device/{device_token}", self.base_url))
            .header("authorization", format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", push_type)
            .header("apns-priority", priority)
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", delivery.topic)
            .json(&body)
            .send()
            .await;
        super::outcome_of(sent, |status, text| match status.as_u16() {
            410 => Some(Outcome::Gone),
            400 if text.contains("BadDeviceToken") => Some(Outcome::Gone),
            403 if text.contains("ExpiredProviderToken") => {
                if let Ok(mut cached) = self.token.lock() {
                    *cached = None;
                }
                Some(Outcome::Retry(None))
            }
            _ => None,
        })
        .await
    }

    fn provider_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().map_err(|_| "APNs token lock poisoned")?;
        if let Some((token, made)) = cached.as_ref()
            && made.elapsed() < TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            iat: i64,
        }
        let token = self.key.sign(
            Some(&self.key_id),
            &Claims {
                iss: &self.team_id,
                iat: confab_proto::Timestamp::now().millis() / 1000,
            },
        )?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}
