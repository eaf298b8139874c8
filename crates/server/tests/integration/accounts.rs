//! Signup, login, profiles, devices, logout and revocation.

use crate::harness::TestServer;
use confab_client::{ErrorCode, Event};
use std::time::Duration;

fn code<T: std::fmt::Debug>(r: Result<T, confab_client::Error>) -> Option<ErrorCode> {
    r.unwrap_err().code()
}

#[tokio::test]
async fn signup_and_login_errors() {
    let server = TestServer::start().await;
    let anon = server.anon();
    let ada = anon
        .signup("ada", "password-ada", Some("Ada L."))
        .await
        .unwrap();
    assert_eq!(
        (ada.username.as_str(), ada.display_name.as_str()),
        ("ada", "Ada L.")
    );
    assert_eq!(
        code(anon.signup("ada", "password-x", None).await),
        Some(ErrorCode::Conflict)
    );
    assert_eq!(
        code(anon.signup("Ada", "password-x", None).await),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(anon.signup("ab", "password-x", None).await),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(anon.signup("carl", "short", None).await),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(anon.login("ada", "wrong-password", None).await),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        code(anon.login("nobody", "password-ada", None).await),
        Some(ErrorCode::Unauthorized)
    );

    // Each login is a device with its own token.
    let phone = anon
        .login("ada", "password-ada", Some("phone"))
        .await
        .unwrap();
    let laptop = anon
        .login("ada", "password-ada", Some("laptop"))
        .await
        .unwrap();
    assert_ne!(phone.device_id, laptop.device_id);
    assert_ne!(phone.token, laptop.token);
    let ada_phone = anon.with_token(phone.token);
    let devices = ada_phone.devices().await.unwrap();
    assert_eq!(devices.len(), 2);
    assert!(
        devices
            .iter()
            .any(|d| d.id == phone.device_id && d.current && d.name == "phone")
    );

    // Profiles and lookups.
    assert_eq!(ada_phone.me().await.unwrap().id, ada.id);
    let lowercase = reqwest::Client::new()
        .get(format!("{}/v1/me", server.url))
        .header(
            "authorization",
            format!("bearer {}", ada_phone.token().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        lowercase.status(),
        200,
        "the auth scheme is case-insensitive"
    );
    assert_eq!(
        ada_phone
            .update_me("Ada Lovelace")
            .await
            .unwrap()
            .display_name,
        "Ada Lovelace"
    );
    assert_eq!(
        ada_phone.user(ada.id).await.unwrap().display_name,
        "Ada Lovelace"
    );
    assert_eq!(ada_phone.user_by_username("ada").await.unwrap().id, ada.id);
    assert_eq!(
        code(ada_phone.user_by_username("nobody").await),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(code(anon.me().await), Some(ErrorCode::Unauthorized));
    assert_eq!(
        code(anon.with_token("not-a-token").me().await),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test]
async fn errors_have_the_contract_shape() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/v1/auth/signup", server.url))
        .json(&serde_json::json!({"username": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );

    let res = http
        .get(format!("{}/v1/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let res = http
        .post(format!("{}/v1/auth/login", server.url))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http
        .get(format!("{}/v1/users/abc", server.url))
        .send()
        .await
        .unwrap();
    assert!(res.status() == 400 || res.status() == 401);
    let res = http
        .put(format!("{}/v1/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_request"
    );
    let res = http
        .get(format!("{}/v1/ws", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a plain GET of the WebSocket route");
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_request"
    );
    let res = http
        .get(format!("{}/v1/no/such/route", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
}

#[tokio::test]
async fn auth_attempts_are_rate_limited_per_ip() {
    let server = TestServer::with(|c| c.auth_rate_per_min = 3).await;
    let anon = server.anon();
    for _ in 0..3 {
        let _ = anon.login("nobody", "password-x", None).await;
    }
    let err = anon.login("nobody", "password-x", None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    assert!(matches!(err, confab_client::Error::Api { retry_after_ms: Some(ms), .. } if ms > 0));
}

#[tokio::test]
async fn logout_revokes_the_token_everywhere_at_once() {
    let server = TestServer::start().await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let (_conn, mut events) = phone.connect(0).await;
    phone.client.logout().await.unwrap();
    assert_eq!(
        phone.client.me().await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
    let closed = wait_for_close(&mut events).await;
    assert_eq!(
        closed,
        Some(4001),
        "the open WebSocket of the device closes with 4001"
    );
    // The user's other device is untouched.
    assert_eq!(laptop.client.me().await.unwrap().username, "ada");
}

#[tokio::test]
async fn removing_a_device_revokes_it() {
    let server = TestServer::start().await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let (_conn, mut events) = phone.connect(0).await;
    laptop
        .client
        .remove_device(phone.login.device_id)
        .await
        .unwrap();
    assert_eq!(wait_for_close(&mut events).await, Some(4001));
    assert_eq!(
        phone.client.devices().await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
    let left = laptop.client.devices().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        laptop
            .client
            .remove_device(phone.login.device_id)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotFound)
    );
}

/// The close code of the first disconnect, or `None` when the stream ends without one.
pub async fn wait_for_close(events: &mut confab_client::Events) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no disconnect within 5 s")
        {
            Some(Event::Disconnected { reason }) => return reason.close_code(),
            Some(Event::Terminated { .. }) | None => return None,
            Some(_) => {}
        }
    }
}

#[tokio::test]
async fn names_with_invisible_or_control_characters_are_refused_and_names_are_nfc() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(method, format!("{}{path}", server.url))
            .bearer_auth(&ada.login.token)
            .json(&body)
    };
    for bad in [
        "\u{202e}nimda",
        "ad\u{200b}a",
        "two\nlines",
        "nul\u{0}",
        "\u{3164}",
    ] {
        let tries = [
            call(
                reqwest::Method::POST,
                "/v1/auth/signup",
                serde_json::json!({"username": "mallory", "password": "password-m", "display_name": bad}),
            ),
            call(
                reqwest::Method::PATCH,
                "/v1/me",
                serde_json::json!({"display_name": bad}),
            ),
            call(
                reqwest::Method::POST,
                "/v1/groups",
                serde_json::json!({"title": bad, "member_ids": []}),
            ),
            call(
                reqwest::Method::POST,
                "/v1/auth/login",
                serde_json::json!({"username": "ada", "password": "password-ada", "device_name": bad}),
            ),
        ];
        for request in tries {
            let res = request.send().await.unwrap();
            let url = res.url().path().to_owned();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (400, Some("invalid_request")),
                "{url} took {bad:?}: {body}"
            );
        }
    }
    // Stored in NFC: "e" + combining acute is the one character "é".
    let me = ada.client.update_me("Ade\u{301}le 👩‍💻").await.unwrap();
    assert_eq!(me.display_name, "Ad\u{e9}le 👩‍💻");
}

#[tokio::test]
async fn wrong_passwords_for_one_account_slow_down_whatever_the_address() {
    let server = TestServer::start().await;
    server.user("ada").await;
    server.user("bob").await;
    let login = |user: &'static str, password: &'static str, from: String| {
        reqwest::Client::new()
            .post(format!("{}/v1/auth/login", server.url))
            // Through the (loopback) proxy, from a new address each time.
            .header("x-forwarded-for", from)
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
    };
    for i in 0..5 {
        let res = login("ada", "guess-guess", format!("198.51.100.{i}"))
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Now every attempt waits, even with the right password, from yet another address.
    let res = login("ada", "password-ada", "203.0.113.7".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let wait = body["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&wait), "{body}");
    // Another account is not affected.
    let res = login("bob", "password-bob", "198.51.100.1".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // After the wait, the right password works and clears the count.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    let res = login("ada", "password-ada", "198.51.100.1".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn changing_the_password_logs_out_every_other_device() {
    let server = TestServer::start().await;
    let phone = server.user("ada").await;
    let laptop = server.login("ada").await;
    let mut laptop_ws = crate::gateway::RawWs::hello(&server, &laptop.login.token).await;

    assert_eq!(
        code(
            phone
                .client
                .change_password("not it at all", "new password 1")
                .await
        ),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(phone.client.change_password("password-ada", "short").await),
        Some(ErrorCode::InvalidRequest)
    );
    laptop
        .client
        .me()
        .await
        .expect("a failed change logs nobody out");
    phone
        .client
        .change_password("password-ada", "new password 1")
        .await
        .unwrap();

    assert_eq!(laptop_ws.close_code().await, Some(4001));
    assert_eq!(
        code(laptop.client.me().await),
        Some(ErrorCode::Unauthorized)
    );
    phone
        .client
        .me()
        .await
        .expect("the device that changed it stays logged in");
    let anon = server.anon();
    assert_eq!(
        code(anon.login("ada", "password-ada", None).await),
        Some(ErrorCode::Unauthorized)
    );
    anon.login("ada", "new password 1", None).await.unwrap();
}

#[tokio::test]
async fn a_login_past_the_device_limit_logs_out_the_longest_idle_device() {
    let server = TestServer::start().await;
    let first = server.user("ada").await;
    let mut first_ws = crate::gateway::RawWs::hello(&server, &first.login.token).await;
    for _ in 1..confab_proto::limits::DEVICES_PER_USER {
        server.login("ada").await;
    }
    assert_eq!(first.client.devices().await.unwrap().len(), 32);
    let newest = server.login("ada").await;
    let devices = newest.client.devices().await.unwrap();
    assert_eq!(devices.len(), 32);
    assert!(!devices.iter().any(|d| d.id == first.login.device_id));
    assert_eq!(first_ws.close_code().await, Some(4001));
    assert_eq!(code(first.client.me().await), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn a_device_holds_at_most_eight_sessions() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let mut sessions = Vec::new();
    for _ in 0..confab_proto::limits::SESSIONS_PER_DEVICE {
        sessions.push(crate::gateway::RawWs::hello(&server, &ada.login.token).await);
    }
    let mut ninth = crate::gateway::RawWs::hello(&server, &ada.login.token).await;
    assert_eq!(ninth.close_code().await, Some(4010));
    // Another device of the same account is not affected; closing one frees a place.
    let other = server.login("ada").await;
    let mut theirs = crate::gateway::RawWs::hello(&server, &other.login.token).await;
    theirs.send(serde_json::json!({"type": "heartbeat"})).await;
    assert_eq!(theirs.next().await.unwrap()["type"], "heartbeat_ack");
    drop(sessions.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = crate::gateway::RawWs::hello(&server, &ada.login.token).await;
        again.send(serde_json::json!({"type": "heartbeat"})).await;
        if again
            .next()
            .await
            .is_some_and(|f| f["type"] == "heartbeat_ack")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not freed"
        );
    }
}

#[tokio::test]
async fn accounts_cannot_be_listed_by_walking_ids_or_usernames() {
    let server = TestServer::with(|c| c.lookup_rate_per_min = 3).await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    // A stranger's id tells nothing.
    assert_eq!(
        code(carol.client.user(ada.id()).await),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(carol.client.user(confab_client::UserId(987_654)).await),
        Some(ErrorCode::NotFound),
        "the same answer as for no such user"
    );
    carol.client.user(carol.id()).await.expect("yourself");
    // People you share a conversation with, now or before, can be looked up.
    let group = ada
        .client
        .create_group("g", &[bob.id(), carol.id()])
        .await
        .unwrap();
    carol.client.user(ada.id()).await.unwrap();
    carol
        .client
        .remove_member(group.id, carol.id())
        .await
        .unwrap();
    carol
        .client
        .user(bob.id())
        .await
        .expect("a former co-member, for old history");

    // Usernames and new direct conversations share one small allowance per minute.
    let dave = server.user("dave").await;
    dave.client.user_by_username("ada").await.unwrap();
    dave.client.direct(ada.id()).await.unwrap();
    assert_eq!(
        code(dave.client.user_by_username("zed").await),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(dave.client.user_by_username("bob").await),
        Some(ErrorCode::RateLimited)
    );
    assert_eq!(
        code(dave.client.direct(bob.id()).await),
        Some(ErrorCode::RateLimited)
    );
    // Others have their own.
    ada.client.user_by_username("bob").await.unwrap();
}
