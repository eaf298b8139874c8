//! The search benchmark: a store filled with chat-like text (a Zipf vocabulary, mostly
//! short messages) across many conversations, then query latency for common, middling and
//! rare words, a phrase and a prefix, as users with a typical and a large number of
//! conversations, and the index's size per message. Results go in docs/benchmarks.md.
//!
//! ```sh
//! cargo bench -p confab-server --bench search -- --store sqlite
//! cargo bench -p confab-server --bench search -- --store postgres   # a fresh database
//! # --messages 1000000 --conversations 10000 --queries 200 (the defaults)
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/support/postgres.rs"]
mod pg;

use confab_proto::{Action, Body, ConversationId, UserId};
use confab_server::ids::Snowflake;
use confab_server::metrics::Metrics;
use confab_server::store::postgres::PostgresStore;
use confab_server::store::search;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::{NewGroup, NewMessage, NewUser, SearchOrder, SearchRequest, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Words in the vocabulary; their frequencies follow Zipf's law (s = 1).
const VOCABULARY: usize = 30_000;
/// Messages per indexing round, as the server's indexer takes them.
const INDEX_BATCH: usize = 1_000;
/// Sends in flight while filling, so group commit batches them.
const IN_FLIGHT: usize = 256;

struct Args {
    store: String,
    messages: usize,
    conversations: usize,
    queries: usize,
}

fn args() -> Args {
    let mut args = Args {
        store: "sqlite".into(),
        messages: 1_000_000,
        conversations: 10_000,
        queries: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--store" => args.store = value(),
            "--messages" => args.messages = value().parse().unwrap(),
            "--conversations" => args.conversations = value().parse().unwrap(),
            "--queries" => args.queries = value().parse().unwrap(),
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// Pseudo-words of 2 to 9 letters from syllables, and a sampler by Zipf rank.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(rng: &mut StdRng) -> Self {
        const SYLLABLES: &[&str] = &[
            "ka", "to", "ri", "mo", "sa", "ne", "lu", "pe", "di", "ga", "vo", "shi", "ber", "an",
            "tel", "ko", "mi", "ra", "zu", "en", "or", "qua", "li", "den", "fy", "so", "ul",
        ];
        let mut words = Vec::with_capacity(VOCABULARY);
        let mut seen = std::collections::HashSet::new();
        while words.len() < VOCABULARY {
            let n = rng.random_range(1..=4);
            let word: String = (0..n)
                .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> &str {
        let x = rng.random::<f64>() * self.cumulative[VOCABULARY - 1];
        &self.words[self.cumulative.partition_point(|&c| c < x)]
    }

    /// A chat message: mostly a few words, sometimes a paragraph.
    fn message(&self, rng: &mut StdRng) -> String {
        let len = match rng.random_range(0..100) {
            0..60 => rng.random_range(1..8),
            60..95 => rng.random_range(8..30),
            _ => rng.random_range(30..150),
        };
        (0..len)
            .map(|_| self.sample(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

async fn open(
    kind: &str,
) -> (
    Arc<dyn Store>,
    Option<pg::TestDatabase>,
    Option<tempfile::TempDir>,
) {
    let ids = Arc::new(Snowflake::new(1));
    let metrics = Metrics::new().store.clone();
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path(), 4, 1024, ids, metrics)
                .await
                .unwrap();
            (Arc::new(store), None, Some(dir))
        }
        "postgres" => {
            let db = pg::TestDatabase::new().await;
            let store = PostgresStore::connect(&db.url(), 16, 1024, ids, metrics)
                .await
                .unwrap();
            (Arc::new(store), Some(db), None)
        }
        other => panic!("--store sqlite or postgres, not {other}"),
    }
}

/// Users in conversations: each conversation has 2 (70%) or 3 to 30 members, drawn so that
/// most users are in a handful and a few are in hundreds. Returns the members of each.
async fn conversations(
    store: &dyn Store,
    count: usize,
    rng: &mut StdRng,
) -> Vec<(ConversationId, Vec<UserId>)> {
    let users_n = count * 2;
    let mut users = Vec::with_capacity(users_n);
    for i in 0..users_n {
        let user = store
            .create_user(NewUser {
                username: format!("user{i}"),
                display_name: format!("User {i}"),
                password_hash: "x".into(),
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    // A skewed pick: low indexes are the busy users.
    let pick = |rng: &mut StdRng| users[(rng.random::<f64>().powi(3) * users_n as f64) as usize];
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let a = pick(rng);
        if rng.random_range(0..10) < 7 {
            let b = pick(rng);
            if a != b {
                let (c, _) = store.direct(a, b).await.unwrap();
                out.push((c.id, vec![a, b]));
            }
        } else {
            let mut members: Vec<UserId> =
                (0..rng.random_range(2..30)).map(|_| pick(rng)).collect();
            members.sort();
            members.dedup();
            members.retain(|m| *m != a);
            let (c, _) = store
                .create_group(NewGroup {
                    creator: a,
                    title: format!("group {}", out.len()),
                    members: members.clone(),
                    groups_per_day: u32::MAX,
                })
                .await
                .unwrap();
            members.push(a);
            out.push((c.id, members));
        }
    }
    out
}

async fn fill(
    store: Arc<dyn Store>,
    conversations: &[(ConversationId, Vec<UserId>)],
    vocabulary: &Vocabulary,
    messages: usize,
    rng: &mut StdRng,
) -> Duration {
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..messages {
        let (id, members) = &conversations[rng.random_range(0..conversations.len())];
        let sender = members[rng.random_range(0..members.len())];
        let body = Body::new(vocabulary.message(rng)).unwrap();
        let store = store.clone();
        let new = NewMessage {
            conversation_id: *id,
            sender_id: sender,
            client_msg_id: format!("m{i}"),
            action: Action::Text {
                body,
                reply_to: None,
            },
            mentions: Vec::new(),
            quota_bytes: u64::MAX,
        };
        in_flight.spawn(async move { store.append(new).await.unwrap() });
        if in_flight.len() >= IN_FLIGHT {
            in_flight.join_next().await.unwrap().unwrap();
        }
        if i % 100_000 == 99_999 {
            eprintln!("{} messages, {:?}", i + 1, started.elapsed());
        }
    }
    while in_flight.join_next().await.is_some() {}
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(
    store: &dyn Store,
    label: &str,
    searchers: &[UserId],
    queries: &[String],
    conversation: impl Fn(UserId) -> Option<ConversationId>,
    order: SearchOrder,
) {
    let mut times = Vec::new();
    let mut hits = 0;
    // A search the store gives up on (its deadline) is a result too: counted, its time kept.
    let mut failed = 0;
    for (i, &user) in searchers.iter().enumerate() {
        let q = &queries[i % queries.len()];
        let started = Instant::now();
        let found = store
            .search(SearchRequest {
                user,
                query: search::parse(q).unwrap(),
                conversation: conversation(user),
                order,
                limit: 20,
            })
            .await;
        times.push(started.elapsed());
        match found {
            Ok(found) => hits += found.len(),
            Err(_) => failed += 1,
        }
    }
    times.sort();
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {failed} |",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        hits as f64 / times.len() as f64,
    );
}

async fn index_bytes(
    store_kind: &str,
    db: Option<&pg::TestDatabase>,
    dir: Option<&tempfile::TempDir>,
) -> u64 {
    match store_kind {
        "postgres" => {
            let client = db.unwrap().client().await;
            let row = client
                .query_one("SELECT pg_total_relation_size('message_search')", &[])
                .await
                .unwrap();
            row.get::<_, i64>(0) as u64
        }
        _ => {
            let path = dir.unwrap().path().join("confab.db");
            let conn = deadpool_sqlite::rusqlite::Connection::open(path).unwrap();
            conn.query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'message_search%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        }
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let mut rng = StdRng::seed_from_u64(7);
    let (store, db, dir) = open(&args.store).await;
    let vocabulary = Vocabulary::new(&mut rng);
    let convs = conversations(&*store, args.conversations, &mut rng).await;
    let took = fill(store.clone(), &convs, &vocabulary, args.messages, &mut rng).await;
    eprintln!("filled in {took:?}");
    // What the indexer does behind the sends, here all at once.
    let started = std::time::Instant::now();
    while store.index_next(INDEX_BATCH).await.unwrap().more {}
    let indexing = started.elapsed();
    eprintln!("indexed in {indexing:?}");

    // Searchers: users by how many conversations they are in.
    let mut count: std::collections::HashMap<UserId, usize> = Default::default();
    for (_, members) in &convs {
        for m in members {
            *count.entry(*m).or_default() += 1;
        }
    }
    let mut by_count: Vec<(usize, UserId)> = count.iter().map(|(u, n)| (*n, *u)).collect();
    by_count.sort();
    let typical: Vec<UserId> = by_count[by_count.len() / 2..]
        .iter()
        .step_by((by_count.len() / 2 / args.queries).max(1))
        .take(args.queries)
        .map(|(_, u)| *u)
        .collect();
    let busiest = by_count.last().unwrap();
    let heavy: Vec<UserId> = vec![busiest.1; args.queries.min(50)];
    let median_convs = by_count[by_count.len() * 3 / 4].0;
    let w = |rank: usize| vocabulary.words[rank].clone();
    let common: Vec<String> = (0..10).map(w).collect();
    let middling: Vec<String> = (500..510).map(w).collect();
    let rare: Vec<String> = (20_000..20_010).map(w).collect();
    let phrase: Vec<String> = (0..10)
        .map(|i| format!("\"{} {}\"", w(i), w(i + 1)))
        .collect();
    let prefix: Vec<String> = (100..110)
        .map(|i| format!("{}*", w(i).chars().take(3).collect::<String>()))
        .collect();
    let first_of = |user: UserId| {
        convs
            .iter()
            .find(|(_, m)| m.contains(&user))
            .map(|(c, _)| *c)
    };

    println!(
        "{} store, {} messages in {} conversations, filled in {:.0} s ({:.0} messages/s), \
         indexed in {:.0} s ({:.0} messages/s, batches of {INDEX_BATCH})",
        args.store,
        args.messages,
        args.conversations,
        took.as_secs_f64(),
        args.messages as f64 / took.as_secs_f64(),
        indexing.as_secs_f64(),
        args.messages as f64 / indexing.as_secs_f64()
    );
    println!(
        "searchers: {} users from the upper half by conversations (3rd quartile: {median_convs}), and the busiest user ({} conversations)\n",
        typical.len(),
        busiest.0
    );
    let queries = Queries {
        typical: &typical,
        heavy: &heavy,
        common: &common,
        middling: &middling,
        rare: &rare,
        phrase: &phrase,
        prefix: &prefix,
    };
    measure_all(&*store, &queries, first_of).await;
    if let Some(db) = &db {
        // Right after a million inserts the planner's statistics are stale and GIN's pending
        // list is long; autovacuum would get to both. The steady state:
        let started = Instant::now();
        db.client()
            .await
            .batch_execute("VACUUM ANALYZE")
            .await
            .unwrap();
        println!(
            "\nafter VACUUM ANALYZE ({:.0} s):\n",
            started.elapsed().as_secs_f64()
        );
        measure_all(&*store, &queries, first_of).await;
    }
    let bytes = index_bytes(&args.store, db.as_ref(), dir.as_ref()).await;
    println!(
        "\nindex: {:.1} MB, {:.0} bytes per message",
        bytes as f64 / 1e6,
        bytes as f64 / args.messages as f64
    );
}

/// A line of the table: label, searchers, queries, within one conversation, order.
type Line<'a> = (&'a str, &'a [UserId], &'a [String], bool, SearchOrder);

/// Who searches for what.
struct Queries<'a> {
    typical: &'a [UserId],
    heavy: &'a [UserId],
    common: &'a [String],
    middling: &'a [String],
    rare: &'a [String],
    phrase: &'a [String],
    prefix: &'a [String],
}

async fn measure_all(
    store: &dyn Store,
    q: &Queries<'_>,
    first_of: impl Fn(UserId) -> Option<ConversationId> + Copy,
) {
    println!("| query (newest first, 20 per page) | p50 ms | p99 ms | max ms | results | failed |");
    println!("|---|---|---|---|---|---|");
    let newest = SearchOrder::Newest { before: None };
    let relevance = SearchOrder::Relevance { offset: 0 };
    let all = |_| None;
    let lines: [Line<'_>; 10] = [
        (
            "common word, all conversations",
            q.typical,
            q.common,
            false,
            newest,
        ),
        (
            "middling word (rank 500)",
            q.typical,
            q.middling,
            false,
            newest,
        ),
        ("rare word (rank 20,000)", q.typical, q.rare, false, newest),
        (
            "phrase of two common words",
            q.typical,
            q.phrase,
            false,
            newest,
        ),
        ("prefix of 3 letters", q.typical, q.prefix, false, newest),
        (
            "common word, one conversation",
            q.typical,
            q.common,
            true,
            newest,
        ),
        (
            "rare word, one conversation",
            q.typical,
            q.rare,
            true,
            newest,
        ),
        (
            "common word, by relevance",
            q.typical,
            q.common,
            false,
            relevance,
        ),
        (
            "common word, busiest user",
            q.heavy,
            q.common,
            false,
            newest,
        ),
        ("rare word, busiest user", q.heavy, q.rare, false, newest),
    ];
    for (label, who, what, within_one, order) in lines {
        if within_one {
            measure(store, label, who, what, first_of, order).await;
        } else {
            measure(store, label, who, what, all, order).await;
        }
    }
}
