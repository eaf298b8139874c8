//! Web Push: RFC 8291 message encryption (`aes128gcm`, RFC 8188), RFC 8292 VAPID, and the
//! RFC 8030 request to the browser's push service.

use super::keys::JwtKey;
use super::{Delivery, Outcome};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::hkdf::{HKDF_SHA256, KeyType, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

/// The record size announced in the header; the whole payload is one record.
const RECORD_SIZE: u32 = 4096;
/// The largest body push services must accept (RFC 8030 section 7.2).
pub const MAX_BODY: usize = 4096;
/// What encryption adds: the header (16 + 4 + 1 + 65), the padding delimiter and the tag.
pub const OVERHEAD: usize = 86 + 1 + 16;

/// Sends Web Push messages signed with the server's VAPID key.
pub struct WebPush {
    vapid: JwtKey,
    public_key: String,
    subject: String,
    ttl_secs: u64,
}

impl WebPush {
    /// `vapid` must be a P-256 key.
    pub fn new(vapid: JwtKey, subject: String, ttl_secs: u64) -> Result<Self, String> {
        let public_key = URL_SAFE_NO_PAD.encode(
            vapid
                .public_point()
                .ok_or("the VAPID key must be a P-256 key")?,
        );
        Ok(Self {
            vapid,
            public_key,
            subject,
            ttl_secs,
        })
    }

    /// The VAPID public key, base64url: the browser's `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Encrypts `payload` for one subscription and posts it.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        p256dh: &[u8],
        auth: &[u8],
        delivery: &Delivery<'_>,
    ) -> Outcome {
        let url = match reqwest::Url::parse(endpoint) {
            Ok(url) => url,
            Err(e) => return Outcome::Rejected(format!("bad endpoint: {e}")),
        };
        let body = match encrypt(delivery.payload, p256dh, auth) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected(e),
        };
        let jwt = match self.vapid_jwt(&url) {
            Ok(jwt) => jwt,
            Err(e) => return Outcome::Rejected(e),
        };
        let request = http
            .post(url)
            .header(
                AUTHORIZATION,
                format!("vapid t={jwt}, k={}", self.public_key),
            )
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("TTL", self.ttl_secs.to_string())
            .header("Urgency", "high")
            // Replaces an undelivered earlier push of the same conversation.
            .header("Topic", delivery.topic)
            .body(body);
        super::outcome_of(request.send().await, |status, _| {
            matches!(status.as_u16(), 404 | 410).then_some(Outcome::Gone)
        })
        .await
    }

    /// RFC 8292: a JWT for the endpoint's origin, valid for 12 hours.
    fn vapid_jwt(&self, endpoint: &reqwest::Url) -> Result<String, String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            aud: String,
            exp: i64,
            sub: &'a str,
        }
        let aud = endpoint.origin().ascii_serialization();
        let exp = chrono_now_secs() + 12 * 3600;
        self.vapid.sign(
            None,
            &Claims {
                aud,
                exp,
                sub: &self.subject,
            },
        )
    }
}

fn chrono_now_secs() -> i64 {
    confab_proto::Timestamp::now().millis() / 1000
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), String> {
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| "HKDF failed".to_owned())
}

/// RFC 8291: encrypts `plaintext` to the browser's key `p256dh` (65 bytes) with its
/// authentication secret `auth` (16 bytes), as one `aes128gcm` record with its header.
pub fn encrypt(plaintext: &[u8], p256dh: &[u8], auth: &[u8]) -> Result<Vec<u8>, String> {
    if plaintext.len() + OVERHEAD > MAX_BODY {
        return Err(format!(
            "payload of {} bytes is over the Web Push limit",
            plaintext.len()
        ));
    }
    let rng = SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| "could not generate an ECDH key")?;
    let as_public = ephemeral
        .compute_public_key()
        .map_err(|_| "could not compute the ECDH public key")?;
    let as_public = as_public.as_ref().to_vec();
    let ecdh_secret = agree_ephemeral(
        ephemeral,
        &UnparsedPublicKey::new(&ECDH_P256, p256dh),
        |secret| secret.to_vec(),
    )
    .map_err(|_| "the subscription's p256dh key is not a valid P-256 point")?;

    let mut ikm = [0u8; 32];
    hkdf(
        auth,
        &ecdh_secret,
        &[b"WebPush: info\0", p256dh, &as_public],
        &mut ikm,
    )?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| "no randomness for the salt")?;
    let mut cek = [0u8; 16];
    hkdf(&salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    let mut nonce = [0u8; 12];
    hkdf(&salt, &ikm, &[b"Content-Encoding: nonce\0"], &mut nonce)?;

    // One record, so it is the last: the delimiter is 2 (RFC 8188 section 2).
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "bad content-encryption key")?,
    );
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .map_err(|_| "AES-GCM failed")?;

    let mut body = Vec::with_capacity(86 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}
