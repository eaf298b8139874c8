//! Subscribing and unsubscribing: what a client may register, checked before it is saved.
//! A device holds at most `PUSH_SUBSCRIPTIONS_PER_DEVICE`; the store drops its oldest
//! beyond that, since a browser that subscribes again means its old subscription is stale.

use super::Pusher;
use super::safety::check_endpoint;
use crate::error::{ApiError, ApiResult};
use crate::store::{NewSubscription, PushTarget, SubscriptionRecord};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_proto::{DeviceId, PushSubscriptionId, PushSubscriptionRequest, UserId};

impl Pusher {
    /// Validates and saves a subscription of a device.
    pub async fn subscribe(
        &self,
        user: UserId,
        device: DeviceId,
        request: PushSubscriptionRequest,
    ) -> ApiResult<SubscriptionRecord> {
        let target = match request {
            PushSubscriptionRequest::Webpush { endpoint, keys } => {
                if let Some(problem) = check_endpoint(&endpoint, self.allow_http) {
                    return Err(ApiError::invalid(problem));
                }
                let p256dh = decode_key(&keys.p256dh, 65, "keys.p256dh")?;
                if p256dh[0] != 4 {
                    return Err(ApiError::invalid(
                        "keys.p256dh must be an uncompressed P-256 point (0x04 first)",
                    ));
                }
                let auth = decode_key(&keys.auth, 16, "keys.auth")?;
                PushTarget::WebPush {
                    endpoint,
                    p256dh,
                    auth,
                }
            }
            PushSubscriptionRequest::Fcm { token } => {
                if !self.providers.has_fcm() {
                    return Err(ApiError::invalid(
                        "this server has no FCM credentials; use webpush",
                    ));
                }
                check_token(&token, |c| c.is_ascii_graphic())?;
                PushTarget::Fcm(token)
            }
            PushSubscriptionRequest::Apns { token } => {
                if !self.providers.has_apns() {
                    return Err(ApiError::invalid(
                        "this server has no APNs key; use webpush",
                    ));
                }
                check_token(&token, |c| c.is_ascii_hexdigit())?;
                PushTarget::Apns(token)
            }
        };
        Ok(self
            .store
            .add_subscription(NewSubscription {
                user_id: user,
                device_id: device,
                target,
            })
            .await?)
    }

    /// Deletes a subscription of `user`.
    pub async fn unsubscribe(&self, user: UserId, id: PushSubscriptionId) -> ApiResult<()> {
        if self.store.delete_subscription(user, id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("push subscription"))
        }
    }
}

fn decode_key(value: &str, len: usize, field: &str) -> ApiResult<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| ApiError::invalid(format!("{field} must be base64url")))?;
    if bytes.len() != len {
        return Err(ApiError::invalid(format!(
            "{field} must be {len} bytes, not {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn check_token(token: &str, allowed: impl Fn(char) -> bool) -> ApiResult<()> {
    if token.is_empty() || token.len() > 4096 || !token.chars().all(allowed) {
        return Err(ApiError::invalid(
            "token must be 1-4096 characters of the provider's alphabet",
        ));
    }
    Ok(())
}
