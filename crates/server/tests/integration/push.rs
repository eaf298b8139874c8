//! Push notifications against local servers that do what the real ones do: a Web Push
//! service that checks the VAPID JWT with the key from the API and decrypts the body with
//! an independent RFC 8291 implementation (Mozilla's `ece`), and FCM and APNs (HTTP/2)
//! servers that verify their JWTs and the request shape.

use super::harness::{TestServer, TestUser};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_server::Config;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a fake provider received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub version: Version,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A scripted answer: status, `Retry-After` seconds, body.
type Answer = (u16, Option<u64>, &'static str);

/// A local HTTP server that records requests and answers from a script (then 201).
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    answer_token: Arc<Mutex<Option<Value>>>,
}

impl Receiver {
    /// Starts on a free loopback port; HTTP/1.1 and HTTP/2 (h2c) both accepted.
    pub async fn start() -> (Self, String) {
        let receiver = Self::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    /// The next answers: (status, Retry-After seconds, body).
    pub fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub fn requests(&self, path_prefix: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// Waits up to 10 s for `n` requests under `path_prefix`.
    pub async fn wait(&self, path_prefix: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.requests(path_prefix);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited 10 s for {n} requests to {path_prefix}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(method, Method::POST, "providers are only ever POSTed to");
    let path = uri.path().to_owned();
    receiver.got.lock().unwrap().push(Received {
        at: Instant::now(),
        version,
        path: path.clone(),
        headers,
        body,
    });
    if path == "/token" {
        let token = receiver.answer_token.lock().unwrap().clone();
        return axum::Json(token.unwrap_or_else(
            || json!({"access_token": "fcm-access-1", "expires_in": 3600, "token_type": "Bearer"}),
        ))
        .into_response();
    }
    let next = receiver.script.lock().unwrap().pop_front();
    let (status, retry_after, text) = next.unwrap_or((201, None, ""));
    let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// A browser's push subscription: its ECDH key pair and auth secret.
pub struct Browser {
    keys: Box<dyn ece::LocalKeyPair>,
    auth: Vec<u8>,
}

impl Browser {
    pub fn new() -> Self {
        let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        Self {
            keys,
            auth: auth.to_vec(),
        }
    }

    pub fn subscription(&self, endpoint: &str) -> Value {
        let public = self.keys.pub_as_raw().unwrap();
        json!({
            "kind": "webpush",
            "endpoint": endpoint,
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public), "auth": URL_SAFE_NO_PAD.encode(&self.auth)},
        })
    }

    pub fn decrypt(&self, body: &[u8]) -> Value {
        let components = self.keys.raw_components().unwrap();
        let plain = ece::decrypt(&components, &self.auth, body).expect("RFC 8291 decryption");
        serde_json::from_slice(&plain).unwrap()
    }
}

async fn post(user: &TestUser, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", user.url))
        .bearer_auth(&user.login.token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn subscribe(user: &TestUser, body: &Value) -> String {
    let (status, answer) = post(user, "/v1/push/subscriptions", body).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

pub fn pushy(config: &mut Config) {
    config.push_allow_http_endpoints = true;
    config.push_retry_base_ms = 50;
    config.push_collapse_ms = 300;
    config.push_vapid_subject = "mailto:ops@confab.test".into();
}

/// Alice (never connected, so offline) subscribed at the receiver, and Bob to write to her.
pub async fn pair(server: &TestServer) -> (TestUser, TestUser, confab_client::ConversationId) {
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let chat = bob.client.direct(alice.id()).await.unwrap();
    (alice, bob, chat.id)
}

/// Bob writing to alice, whose browser is subscribed at a local push service, on a server
/// set up by `pushy` and then `configure`. Keep `server` bound: dropping it stops it.
pub struct Subscribed {
    pub receiver: Receiver,
    pub browser: Browser,
    pub server: TestServer,
    pub alice: TestUser,
    pub bob: TestUser,
    pub chat: confab_client::ConversationId,
}

pub async fn subscribed(configure: impl FnOnce(&mut Config)) -> Subscribed {
    let (receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(|c| {
        pushy(c);
        configure(c);
    })
    .await;
    let (alice, bob, chat) = pair(&server).await;
    let browser = Browser::new();
    subscribe(
        &alice,
        &browser.subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    Subscribed {
        receiver,
        browser,
        server,
        alice,
        bob,
        chat,
    }
}

#[tokio::test]
async fn web_push_is_signed_with_vapid_and_encrypted_per_rfc_8291() {
    let (receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(pushy).await;
    let (alice, bob, chat) = pair(&server).await;
    let browser = Browser::new();
    subscribe(
        &alice,
        &browser.subscription(&format!("{push_url}/push/alice")),
    )
    .await;

    bob.client
        .send_http(chat, None, "hello alice, secret plans")
        .await
        .unwrap();
    let got = receiver.wait("/push/alice", 1).await;
    let push = &got[0];
    let header = |name: &str| {
        push.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-encoding").as_deref(), Some("aes128gcm"));
    assert_eq!(header("ttl").as_deref(), Some("86400"));
    assert_eq!(header("urgency").as_deref(), Some("high"));
    assert_eq!(header("topic"), Some(format!("c{chat}")));

    // VAPID (RFC 8292): `vapid t=<JWT>, k=<the key the API publishes>`.
    let authorization = header("authorization").unwrap();
    let (t, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("vapid t=..., k=...");
    let published: Value = reqwest::get(format!("{}/v1/push/vapid-public-key", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["key"].as_str(), Some(k));
    let point = URL_SAFE_NO_PAD.decode(k).unwrap();
    assert_eq!(
        (point.len(), point[0]),
        (65, 4),
        "an uncompressed P-256 point"
    );
    let key = DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..33]),
        &URL_SAFE_NO_PAD.encode(&point[33..]),
    )
    .unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[push_url.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(t, &key, &validation)
        .expect("a VAPID JWT signed by the published key, for the endpoint's origin")
        .claims;
    assert_eq!(claims["sub"], "mailto:ops@confab.test");
    let exp = claims["exp"].as_i64().unwrap();
    let now = chrono_secs();
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "exp within 24 h: {exp} vs {now}"
    );

    let payload = browser.decrypt(&push.body);
    assert_eq!(payload["conversation_id"], chat.to_string());
    assert_eq!(payload["sender_name"], "bob");
    assert_eq!(payload["count"], 1);
    assert_eq!(payload["seq"], 1);
    assert!(
        payload.get("preview").is_none() && !payload.to_string().contains("secret plans"),
        "no message text without push_preview: {payload}"
    );
}

#[tokio::test]
async fn a_burst_becomes_one_more_notification_with_the_count_and_a_preview() {
    let Subscribed {
        receiver,
        browser,
        bob,
        chat,
        server: _server,
        ..
    } = subscribed(|c| {
        c.push_preview = true;
        c.push_collapse_ms = 1_000;
    })
    .await;
    for i in 1..=5 {
        bob.client
            .send_http(chat, None, format!("message {i}"))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let got = receiver.requests("/push/alice");
        if let Some(last) = got.last().map(|p| browser.decrypt(&p.body))
            && last["count"] == 5
        {
            assert!(got.len() <= 2, "five messages made {} pushes", got.len());
            break last;
        }
        assert!(Instant::now() < deadline, "no push with count 5");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(last["preview"], "message 5");
    assert_eq!(last["seq"], 5);
}

#[tokio::test]
async fn no_push_while_a_device_is_online() {
    let Subscribed {
        receiver,
        server,
        alice,
        bob,
        chat,
        ..
    } = subscribed(|_| {}).await;
    let (_conn, mut events) = alice.connect(0).await;
    bob.client
        .send_http(chat, None, "you are here")
        .await
        .unwrap();
    super::harness::next_message(&mut events, Duration::from_secs(5)).await;
    server
        .wait_metric("confab_push_skipped_total", |v| v >= 1.0)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        receiver.requests("/push/").is_empty(),
        "pushed to an online user"
    );
}

#[tokio::test]
async fn a_gone_subscription_is_deleted_and_gets_no_more_pushes() {
    let (receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(pushy).await;
    let (alice, bob, chat) = pair(&server).await;
    let id = subscribe(
        &alice,
        &Browser::new().subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    receiver.answer(&[(410, None, "")]);
    bob.client.send_http(chat, None, "one").await.unwrap();
    receiver.wait("/push/alice", 1).await;
    server
        .wait_metric("confab_push_subscriptions_dropped_total", |v| v >= 1.0)
        .await;
    bob.client.send_http(chat, None, "two").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.requests("/push/alice").len(),
        1,
        "pushed to a gone subscription"
    );
    let status = reqwest::Client::new()
        .delete(format!("{}/v1/push/subscriptions/{id}", server.url))
        .bearer_auth(&alice.login.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "the subscription was deleted");
}

#[tokio::test]
async fn failures_are_retried_with_backoff_honouring_retry_after() {
    let (receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(pushy).await;
    let (alice, bob, chat) = pair(&server).await;
    subscribe(
        &alice,
        &Browser::new().subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    receiver.answer(&[
        (503, Some(1), "busy"),
        (429, None, "slow down"),
        (201, None, ""),
    ]);
    bob.client.send_http(chat, None, "persist").await.unwrap();
    let got = receiver.wait("/push/alice", 3).await;
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(50),
        "no backoff"
    );
    server
        .wait_metric("confab_push_sent_total", |v| v == 1.0)
        .await;
    assert_eq!(server.metric("confab_push_retries_total").await, 2.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests("/push/alice").len(),
        3,
        "pushed again after success"
    );
}

#[tokio::test]
async fn subscriptions_are_validated_and_leave_with_their_device() {
    let (receiver, push_url) = Receiver::start().await;
    let strict = TestServer::start().await;
    let carol = strict.user("carol").await;
    let browser = Browser::new();
    for endpoint in [
        format!("{push_url}/push/carol"), // http, and loopback
        "https://127.0.0.1/push".into(),
        "https://10.0.0.8/push".into(),
        "https://localhost/push".into(),
        "not a url".into(),
        // IPv4 inside IPv6 (compatible, NAT64, 6to4), site local, IETF-reserved IPv4, and
        // ports other than 443: each is a way inward.
        "https://[::7f00:1]/push".into(),
        "https://[64:ff9b::a9fe:a9fe]/push".into(),
        "https://[2002:7f00:1::]/push".into(),
        "https://[fec0::1]/push".into(),
        "https://192.0.0.170/push".into(),
        "https://push.example.com:22/push".into(),
    ] {
        let (status, answer) = post(
            &carol,
            "/v1/push/subscriptions",
            &browser.subscription(&endpoint),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{endpoint}"
        );
    }
    let mut short_key = browser.subscription("https://push.example.com/x");
    short_key["keys"]["auth"] = json!("AAAA");
    assert_eq!(
        post(&carol, "/v1/push/subscriptions", &short_key).await.0,
        400
    );
    let (status, answer) = post(
        &carol,
        "/v1/push/subscriptions",
        &json!({"kind": "fcm", "token": "abc"}),
    )
    .await;
    assert_eq!(status, 400, "no FCM credentials: {answer}");
    assert_eq!(
        post(
            &carol,
            "/v1/push/subscriptions",
            &json!({"kind": "carrier-pigeon"})
        )
        .await
        .0,
        400
    );

    // Logging out removes the device's subscriptions.
    let server = TestServer::with(pushy).await;
    let (alice, bob, chat) = pair(&server).await;
    subscribe(
        &alice,
        &browser.subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    alice.client.logout().await.unwrap();
    bob.client.send_http(chat, None, "anyone?").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        receiver.requests("/push/alice").is_empty(),
        "pushed to a logged-out device"
    );
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn vapid_key(server: &TestServer) -> String {
    let answer: Value = reqwest::get(format!("{}/v1/push/vapid-public-key", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["key"].as_str().unwrap().to_owned()
}

/// The VAPID key lives in the store, shared by every node; a `vapid.pem` an older version
/// left in the data dir is adopted, so browsers subscribed with it keep getting pushes.
#[tokio::test]
async fn the_vapid_key_is_kept_in_the_store_and_an_older_key_file_is_adopted() {
    // A P-256 PKCS#8 key, as `vapid.pem` was.
    let pem = std::fs::read_to_string(fixture("apns-test-key.p8")).unwrap();
    let configured = TestServer::with(|c| c.push_vapid_private_key = pem.clone()).await;
    let expected = vapid_key(&configured).await;

    let data = super::harness::Data::new().await;
    std::fs::write(data.path().join("vapid.pem"), &pem).unwrap();
    let config = super::harness::test_config(data.path());
    let adopted = TestServer::on(data, config).await;
    assert_eq!(vapid_key(&adopted).await, expected);
    // Kept in the store: the file is no longer needed after a restart.
    let data = adopted.stop().await;
    std::fs::remove_file(data.path().join("vapid.pem")).unwrap();
    let config = super::harness::test_config(data.path());
    let restarted = TestServer::on(data, config).await;
    assert_eq!(vapid_key(&restarted).await, expected);

    // A new store without a file makes a key of its own.
    let fresh = TestServer::start().await;
    assert_ne!(vapid_key(&fresh).await, expected);
}

/// Sends FCM pushes to `fcm_url`, with a service account (written into `dir`) whose
/// tokens come from there too.
pub fn fcm(config: &mut Config, dir: &std::path::Path, fcm_url: &str) {
    let account = dir.join("service-account.json");
    let private_key = std::fs::read_to_string(fixture("fcm-test-key.pem")).unwrap();
    std::fs::write(
        &account,
        json!({
            "type": "service_account",
            "project_id": "confab-test",
            "private_key_id": "key-1",
            "private_key": private_key,
            "client_email": "push@confab-test.iam.gserviceaccount.com",
            "token_uri": format!("{fcm_url}/token"),
        })
        .to_string(),
    )
    .unwrap();
    config.push_fcm_service_account = account.display().to_string();
    config.push_fcm_url = fcm_url.to_owned();
}

/// Sends APNs pushes to `apns_url`, with the test key.
pub fn apns(config: &mut Config, apns_url: &str) {
    config.push_apns_key_file = fixture("apns-test-key.p8");
    config.push_apns_key_id = "KEYID12345".into();
    config.push_apns_team_id = "TEAM123456".into();
    config.push_apns_topic = "chat.confab.ios".into();
    config.push_apns_url = apns_url.to_owned();
}

#[tokio::test]
async fn fcm_exchanges_a_service_account_jwt_and_sends_http_v1() {
    let (receiver, fcm_url) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with(|c| {
        pushy(c);
        fcm(c, dir.path(), &fcm_url);
    })
    .await;
    let (alice, bob, chat) = pair(&server).await;
    subscribe(
        &alice,
        &json!({"kind": "fcm", "token": "registration-token-1"}),
    )
    .await;
    bob.client.send_http(chat, None, "hi").await.unwrap();
    let sent = receiver
        .wait("/v1/projects/confab-test/messages:send", 1)
        .await;

    let token_request = &receiver.requests("/token")[0];
    let form: Vec<(String, String)> = url_form(&token_request.body);
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        field("grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let public = std::fs::read(fixture("fcm-test-key.pub.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!("{fcm_url}/token")]);
    let assertion = jsonwebtoken::decode::<Value>(
        &field("assertion"),
        &DecodingKey::from_rsa_pem(&public).unwrap(),
        &validation,
    )
    .expect("an RS256 assertion signed by the service account's key");
    assert_eq!(assertion.header.kid.as_deref(), Some("key-1"));
    assert_eq!(
        assertion.claims["iss"],
        "push@confab-test.iam.gserviceaccount.com"
    );
    assert_eq!(
        assertion.claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );

    let send = &sent[0];
    assert_eq!(send.headers["authorization"], "Bearer fcm-access-1");
    let body: Value = serde_json::from_slice(&send.body).unwrap();
    assert_eq!(body["message"]["token"], "registration-token-1");
    assert_eq!(
        body["message"]["android"]["collapse_key"],
        format!("c{chat}")
    );
    assert_eq!(
        body["message"]["android"]["notification"]["tag"],
        format!("c{chat}"),
        "tagged, so it replaces the conversation's notification in the drawer"
    );
    let data: Value =
        serde_json::from_str(body["message"]["data"]["confab"].as_str().unwrap()).unwrap();
    assert_eq!(data["conversation_id"], chat.to_string());

    // The access token is cached; an UNREGISTERED token is dropped.
    receiver.answer(&[(
        404,
        None,
        r#"{"error":{"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#,
    )]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    bob.client
        .send_http(chat, None, "still there?")
        .await
        .unwrap();
    receiver
        .wait("/v1/projects/confab-test/messages:send", 2)
        .await;
    server
        .wait_metric("confab_push_subscriptions_dropped_total", |v| v >= 1.0)
        .await;
    assert_eq!(
        receiver.requests("/token").len(),
        1,
        "the access token was not reused"
    );
}

#[tokio::test]
async fn apns_gets_http2_with_a_provider_token() {
    let (receiver, apns_url) = Receiver::start().await;
    let server = TestServer::with(|c| {
        pushy(c);
        apns(c, &apns_url);
    })
    .await;
    let (alice, bob, chat) = pair(&server).await;
    let device_token = "a1b2c3d4".repeat(8);
    subscribe(&alice, &json!({"kind": "apns", "token": device_token})).await;
    bob.client.send_http(chat, None, "hi").await.unwrap();
    let got = receiver.wait("/3/device/", 1).await;
    let push = &got[0];
    assert_eq!(push.version, Version::HTTP_2, "APNs speaks HTTP/2 only");
    assert_eq!(push.path, format!("/3/device/{device_token}"));
    assert_eq!(push.headers["apns-topic"], "chat.confab.ios");
    assert_eq!(push.headers["apns-push-type"], "alert");
    assert_eq!(push.headers["apns-collapse-id"], format!("c{chat}"));
    let jwt = push.headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("bearer ")
        .unwrap();
    let public = std::fs::read(fixture("apns-test-key.pub.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let token = jsonwebtoken::decode::<Value>(
        jwt,
        &DecodingKey::from_ec_pem(&public).unwrap(),
        &validation,
    )
    .expect("an ES256 provider token signed by the .p8 key");
    assert_eq!(token.header.kid.as_deref(), Some("KEYID12345"));
    assert_eq!(token.claims["iss"], "TEAM123456");
    assert!((token.claims["iat"].as_i64().unwrap() - chrono_secs()).abs() < 60);
    let body: Value = serde_json::from_slice(&push.body).unwrap();
    assert_eq!(body["aps"]["alert"]["title"], "bob");
    assert_eq!(body["confab"]["conversation_id"], chat.to_string());

    receiver.answer(&[(410, None, r#"{"reason":"Unregistered"}"#)]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    bob.client.send_http(chat, None, "again").await.unwrap();
    receiver.wait("/3/device/", 2).await;
    server
        .wait_metric("confab_push_subscriptions_dropped_total", |v| v >= 1.0)
        .await;
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn chrono_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A push host that accepts connections and never answers; counts the connections.
async fn black_hole() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn a_user_whose_push_hosts_never_answer_does_not_hold_up_anyone_elses_push() {
    let (hole, accepted) = black_hole().await;
    let (receiver, push_url) = Receiver::start().await;
    // Long enough that, if jobs waited on each other, the test would see it.
    let server = TestServer::with(|c| {
        pushy(c);
        c.push_timeout_ms = 60_000;
    })
    .await;
    let (mallory, bob, to_mallory) = pair(&server).await;
    let browser = Browser::new();
    for i in 0..2 {
        subscribe(
            &mallory,
            &browser.subscription(&format!("{hole}/push/mallory-{i}")),
        )
        .await;
    }
    bob.client
        .send_http(to_mallory, None, "to mallory")
        .await
        .unwrap();
    // Both of mallory's subscriptions are tried at once, not one after the other.
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "mallory's pushes were not both started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Mallory's push is still hanging; alice's goes out meanwhile.
    let alice = server.user("alice2").await;
    let to_alice = bob.client.direct(alice.id()).await.unwrap();
    subscribe(
        &alice,
        &browser.subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    bob.client
        .send_http(to_alice.id, None, "to alice")
        .await
        .unwrap();
    receiver.wait("/push/alice", 1).await;
}

#[tokio::test]
async fn a_push_host_that_keeps_timing_out_is_backed_off() {
    let (hole, accepted) = black_hole().await;
    let server = TestServer::with(|c| {
        pushy(c);
        c.push_timeout_ms = 200;
        c.push_retry_base_ms = 10;
        c.push_max_attempts = 100;
    })
    .await;
    let (mallory, bob, chat) = pair(&server).await;
    subscribe(
        &mallory,
        &Browser::new().subscription(&format!("{hole}/push/mallory")),
    )
    .await;
    bob.client
        .send_http(chat, None, "knock knock")
        .await
        .unwrap();
    // Retries come every few tens of milliseconds, but after three missed deadlines the host
    // is left alone for seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tried = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (3..=4).contains(&tried),
        "{tried} connections to a host that never answers in 3 s"
    );
    assert!(server.metric("confab_push_retries_total").await >= 3.0);
}

#[tokio::test]
async fn a_device_keeps_its_newest_ten_subscriptions() {
    let (_receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(pushy).await;
    let alice = server.user("alice").await;
    let browser = Browser::new();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            subscribe(
                &alice,
                &browser.subscription(&format!("{push_url}/push/alice-{i}")),
            )
            .await,
        );
    }
    let delete = |id: &String| {
        reqwest::Client::new()
            .delete(format!("{}/v1/push/subscriptions/{id}", server.url))
            .bearer_auth(&alice.login.token)
            .send()
    };
    for id in &ids[..2] {
        assert_eq!(delete(id).await.unwrap().status(), 404, "the oldest went");
    }
    for id in &ids[2..] {
        assert_eq!(
            delete(id).await.unwrap().status(),
            204,
            "the newest ten stay"
        );
    }
}

#[tokio::test]
async fn one_user_with_many_busy_conversations_holds_one_push_slot() {
    let (hole, accepted) = black_hole().await;
    let (receiver, push_url) = Receiver::start().await;
    let server = TestServer::with(|c| {
        pushy(c);
        c.push_concurrency = 2;
        c.push_timeout_ms = 60_000;
    })
    .await;
    let mallory = server.user("mallory").await;
    subscribe(
        &mallory,
        &Browser::new().subscription(&format!("{hole}/push/mallory")),
    )
    .await;
    // Five conversations with news for mallory: five due rows, all for one user.
    for i in 0..5 {
        let friend = server.user(&format!("friend{i}")).await;
        let chat = friend.client.direct(mallory.id()).await.unwrap();
        friend
            .client
            .send_http(chat.id, None, "hello")
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "mallory's push never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alice = server.user("alice").await;
    subscribe(
        &alice,
        &Browser::new().subscription(&format!("{push_url}/push/alice")),
    )
    .await;
    let bob = server.user("bob").await;
    let chat = bob.client.direct(alice.id()).await.unwrap();
    bob.client
        .send_http(chat.id, None, "to alice")
        .await
        .unwrap();
    receiver.wait("/push/alice", 1).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one job for mallory at a time"
    );
}
