//! Search finds exactly what the searcher may see: never a message from before they joined
//! or after they left, deleted for everyone or for them, or in a conversation they were
//! never in; an edited message by its new words only. Pages, order, snippets and the query
//! language, and the errors of bad queries. The index follows the messages (a message is
//! found once the indexer's next round took it), so each test waits for it with
//! [`indexed`] before it asserts what is found and, above all, what is not.

use crate::harness::{TestServer, TestUser};
use confab_client::{
    Action, Body, ConversationId, ErrorCode, MessageId, SearchQuery, SearchResponse,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

async fn say(user: &TestUser, chat: ConversationId, text: &str) -> u64 {
    user.client
        .send_http(chat, None, text)
        .await
        .unwrap()
        .message
        .seq
}

async fn write(user: &TestUser, chat: ConversationId, action: Action) {
    user.client.write_http(chat, None, action).await.unwrap();
}

async fn found(user: &TestUser, query: SearchQuery) -> Vec<String> {
    let page: SearchResponse = user.client.search(query).await.unwrap();
    page.results.into_iter().map(|r| r.message.body).collect()
}

async fn bodies(user: &TestUser, q: &str) -> BTreeSet<String> {
    found(user, SearchQuery::new(q)).await.into_iter().collect()
}

/// Waits until the index holds everything sent so far: sends a marker word into `chat`
/// and waits until `user` finds it. The indexer takes messages oldest first, so once the
/// marker is found, so is everything sent before it.
async fn indexed(user: &TestUser, chat: ConversationId) {
    static MARKERS: AtomicU64 = AtomicU64::new(0);
    let marker = format!("indexmarker{}", MARKERS.fetch_add(1, Ordering::Relaxed));
    say(user, chat, &marker).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while found(user, SearchQuery::new(&marker)).await.is_empty() {
        assert!(Instant::now() < deadline, "the index never took {marker}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn refused(user: &TestUser, query: SearchQuery) -> ErrorCode {
    match user.client.search(query).await {
        Err(e) => e.code().expect("an API error"),
        Ok(page) => panic!("expected a refusal, got {page:?}"),
    }
}

#[tokio::test]
async fn search_finds_only_what_the_searcher_may_see() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let group = ada
        .client
        .create_group("climbing", &[bob.id()])
        .await
        .unwrap()
        .id;
    say(&ada, group, "alpha before carol joined").await;
    ada.client.add_member(group, carol.id()).await.unwrap();
    let during = say(&bob, group, "alpha while carol was in").await;
    let gone = say(&ada, group, "alpha taken back").await;
    write(&ada, group, Action::Delete { target: gone }).await;
    ada.client.remove_member(group, carol.id()).await.unwrap();
    say(&ada, group, "alpha after carol left").await;
    let direct = ada.client.direct(bob.id()).await.unwrap().id;
    say(&ada, direct, "alpha between ada and bob").await;
    let edited = say(&ada, direct, "alpha beta").await;
    write(
        &ada,
        direct,
        Action::Edit {
            target: edited,
            body: Body::new("alpha gamma".into()).unwrap(),
        },
    )
    .await;
    indexed(&ada, direct).await;

    assert_eq!(
        bodies(&carol, "alpha").await,
        set(&["alpha while carol was in"]),
        "only inside her window, never the direct conversation, never the deleted one"
    );
    let everything = [
        "alpha before carol joined",
        "alpha while carol was in",
        "alpha after carol left",
        "alpha between ada and bob",
        "alpha gamma",
    ];
    assert_eq!(bodies(&bob, "alpha").await, set(&everything));
    // Bob hides one for himself: gone from his results, not from ada's.
    write(&bob, group, Action::DeleteForMe { target: during }).await;
    assert!(
        !bodies(&bob, "alpha")
            .await
            .contains("alpha while carol was in")
    );
    assert_eq!(bodies(&ada, "alpha").await, set(&everything));
    // Edited: found by its new words only.
    assert!(bodies(&ada, "beta").await.is_empty());
    assert_eq!(bodies(&ada, "gamma").await, set(&["alpha gamma"]));
    assert!(
        bodies(&ada, "taken").await.is_empty(),
        "deleted for everyone"
    );
    // Within one conversation; one she was never in is refused as its history is.
    assert_eq!(
        found(&bob, SearchQuery::new("alpha").within(direct)).await,
        ["alpha gamma", "alpha between ada and bob"],
        "newest first"
    );
    assert_eq!(
        refused(&carol, SearchQuery::new("alpha").within(direct)).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        found(&carol, SearchQuery::new("alpha").within(group)).await,
        ["alpha while carol was in"]
    );
}

#[tokio::test]
async fn pages_order_snippets_and_the_query_language() {
    let server = TestServer::start().await;
    let ada = server.user("ada").await;
    let bob = server.user("bob").await;
    let chat = ada.client.direct(bob.id()).await.unwrap().id;
    for i in 0..25 {
        say(&ada, chat, &format!("lantern number {i}")).await;
    }
    indexed(&bob, chat).await;
    // Newest first, paged by cursor, each message once.
    let first = bob
        .client
        .search(SearchQuery::new("lantern").limit(20))
        .await
        .unwrap();
    assert_eq!(first.results.len(), 20);
    let cursor = first.next_cursor.clone().expect("more to come");
    let second = bob
        .client
        .search(SearchQuery::new("lantern").limit(20).cursor(cursor))
        .await
        .unwrap();
    assert_eq!(second.results.len(), 5);
    assert!(second.next_cursor.is_none());
    let ids: Vec<MessageId> = first
        .results
        .iter()
        .chain(&second.results)
        .map(|r| r.message.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert_eq!(first.results[0].message.body, "lantern number 24");

    // Relevance: the message that is most about the word comes first.
    say(
        &ada,
        chat,
        "a lone zephyr among many other ordinary words here",
    )
    .await;
    say(&ada, chat, "zephyr zephyr zephyr").await;
    indexed(&bob, chat).await;
    assert_eq!(
        found(&bob, SearchQuery::new("zephyr").by_relevance()).await[0],
        "zephyr zephyr zephyr"
    );

    // Snippets mark what matched, as written.
    say(
        &ada,
        chat,
        "Meet at the North Gate of the Café, bring the ropes",
    )
    .await;
    indexed(&bob, chat).await;
    let hit = bob
        .client
        .search(SearchQuery::new(r#""north gate" cafe rope*"#))
        .await
        .unwrap()
        .results
        .remove(0);
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|p| p.matched)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["North Gate", "Café", "ropes"]);
    let whole: String = hit.snippet.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(whole, hit.message.body);
    // Phrases keep their order; Chinese and Japanese match inside runs of characters.
    assert!(
        found(&bob, SearchQuery::new(r#""gate north""#))
            .await
            .is_empty()
    );
    say(&ada, chat, "明日は東京都で会いましょう").await;
    indexed(&bob, chat).await;
    assert_eq!(
        found(&bob, SearchQuery::new("東京")).await,
        ["明日は東京都で会いましょう"]
    );

    // Bad input, with the contract's code.
    for bad in [
        SearchQuery::new(""),
        SearchQuery::new("!!! ???"),
        SearchQuery::new("l*"),
        SearchQuery::new("lantern").limit(0),
        SearchQuery::new("lantern").limit(51),
        SearchQuery::new("lantern").cursor("not-a-cursor"),
        SearchQuery::new("lantern").by_relevance().cursor("100000"),
    ] {
        assert_eq!(
            refused(&bob, bad.clone()).await,
            ErrorCode::InvalidRequest,
            "{bad:?}"
        );
    }
}
