//! Searching the messages a user may see: the query read (`store::search`), the page and
//! its cursor, the store's hits, and a snippet of each. `indexer` keeps the index up.

pub mod indexer;

use crate::conversations::Conversations;
use crate::error::{ApiError, ApiResult};
use crate::store::search::{self, Query};
use crate::store::{SearchOrder, SearchRequest, Store};
use confab_proto::limits::{SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX, SEARCH_RELEVANCE_MAX};
use confab_proto::{ConversationId, MessageId, SearchResponse, SearchResult, SnippetPart, UserId};
use std::sync::Arc;

/// Characters of a snippet, about.
const SNIPPET_CHARS: usize = 120;

/// Which results come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The newest message first.
    #[default]
    Newest,
    /// The best match first (words found more often, and closer together, count more).
    Relevance,
}

/// What a client asks for.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Ask {
    /// The query (docs/protocol.md, "Search").
    pub q: String,
    /// Within one conversation.
    pub conversation_id: Option<ConversationId>,
    /// Newest first (the default) or by relevance.
    #[serde(default)]
    pub order: Order,
    /// Where the page starts: the `next_cursor` of the one before.
    pub cursor: Option<String>,
    /// Results per page.
    pub limit: Option<usize>,
}

/// The search service.
pub struct Searching {
    store: Arc<dyn Store>,
}

impl Searching {
    /// Searches `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A page of what `me` may see that matches `ask`.
    pub async fn search(
        &self,
        me: UserId,
        ask: Ask,
        conversations: &Conversations,
    ) -> ApiResult<SearchResponse> {
        let query = search::parse(&ask.q).map_err(|e| ApiError::invalid(e.to_string()))?;
        let limit = match ask.limit {
            None => SEARCH_PAGE_DEFAULT,
            Some(n @ 1..=SEARCH_PAGE_MAX) => n,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "limit must be 1 to {SEARCH_PAGE_MAX}"
                )));
            }
        };
        if let Some(id) = ask.conversation_id {
            // Not theirs: the same answer as its history gives.
            conversations.membership(me, id).await?;
        }
        let order = page(ask.order, ask.cursor.as_deref())?;
        let mut messages = self
            .store
            .search(SearchRequest {
                user: me,
                query: query.clone(),
                conversation: ask.conversation_id,
                order,
                limit,
            })
            .await?;
        let next_cursor = (messages.len() == limit)
            .then(|| match order {
                SearchOrder::Newest { .. } => messages.last().map(|m| m.id.0.to_string()),
                SearchOrder::Relevance { offset } => {
                    let next = offset + limit;
                    (next < SEARCH_RELEVANCE_MAX).then(|| next.to_string())
                }
            })
            .flatten();
        let results = messages
            .drain(..)
            .map(|message| {
                let snippet = snippet(&message.body, &query);
                SearchResult { message, snippet }
            })
            .collect();
        Ok(SearchResponse {
            results,
            next_cursor,
        })
    }
}

/// Where a page starts, from the cursor the last page gave.
fn page(order: Order, cursor: Option<&str>) -> ApiResult<SearchOrder> {
    let bad = || ApiError::invalid("cursor must be the next_cursor of the page before");
    let number = cursor
        .map(|c| c.parse::<u64>().map_err(|_| bad()))
        .transpose()?;
    Ok(match order {
        Order::Newest => SearchOrder::Newest {
            before: number
                .map(|n| i64::try_from(n).map(MessageId).map_err(|_| bad()))
                .transpose()?,
        },
        Order::Relevance => {
            let offset = usize::try_from(number.unwrap_or(0)).map_err(|_| bad())?;
            if offset >= SEARCH_RELEVANCE_MAX {
                return Err(bad());
            }
            SearchOrder::Relevance { offset }
        }
    })
}

/// The snippet of a hit; the passage's start if its words match only as the index saw them
/// (a word cut at its maximum length).
fn snippet(body: &str, query: &Query) -> Vec<SnippetPart> {
    let parts = search::snippet(body, query, SNIPPET_CHARS).unwrap_or_else(|| {
        let start: String = body.chars().take(SNIPPET_CHARS).collect();
        let cut = start.len() < body.len();
        vec![(if cut { format!("{start}…") } else { start }, false)]
    });
    parts
        .into_iter()
        .map(|(text, matched)| SnippetPart { text, matched })
        .collect()
}
