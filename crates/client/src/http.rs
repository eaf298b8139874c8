//! [`Client`]: one method per HTTP route of contract v1, plus [`MessagesQuery`] and
//! [`Sent`]. The WebSocket lives in [`crate::connection`].

use crate::builder::ConnectionBuilder;
use crate::endpoint::normalize_base;
use crate::error::{Error, Result, parse_retry_after_secs};
use confab_proto::limits::PRESENCE_QUERY_MAX;
use confab_proto::{
    Action, AddMemberRequest, BlockedUser, BlocksResponse, Body, ChangePasswordRequest,
    Conversation, ConversationId, ConversationResponse, ConversationSettings,
    ConversationsResponse, CreateGroupRequest, Device, DeviceId, DevicesResponse, DirectRequest,
    DiscoveryResponse, LoginRequest, LoginResponse, Message, MessageResponse, MessagesResponse,
    Presence, PresenceResponse, Privacy, PrivacyChange, PrivacyResponse, ReadRequest,
    RenameGroupRequest, SendRequest, ServerInfo, SettingsChange, SettingsResponse, SignupRequest,
    SyncResponse, UpdateMeRequest, User, UserId, UserResponse,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long [`Client::new`] waits for a TCP connection.
pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Client::new`] waits for a whole request, answer included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Error bodies are read up to this many bytes; the contract's are far smaller.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// An HTTP client for one Confab server, with or without a token. Cloning is cheap and
/// clones share one connection pool.
///
/// ```no_run
/// # async fn demo() -> confab_client::Result<()> {
/// use confab_client::Client;
///
/// let anon = Client::new("http://127.0.0.1:8080")?;
/// anon.signup("ada", "correct horse", None).await?;
/// let login = anon.login("ada", "correct horse", Some("laptop")).await?;
/// let ada = anon.with_token(login.token);
/// for conversation in ada.conversations().await? {
///     println!("{} unread in {}", conversation.unread, conversation.id);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in logs.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Which page of a conversation's history [`Client::messages`] fetches. The default is
/// the newest page of the server's default size (50).
///
/// ```
/// use confab_client::MessagesQuery;
///
/// let newest = MessagesQuery::newest();
/// let older = MessagesQuery::before(120).limit(200);
/// let newer = MessagesQuery::after(120);
/// assert_eq!(older.limit, Some(200));
/// # let _ = (newest, newer);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagesQuery {
    /// Only messages with a smaller seq (paging back in time).
    pub before_seq: Option<u64>,
    /// Only messages with a greater seq (catching up).
    pub after_seq: Option<u64>,
    /// Page size; the server caps it at 200.
    pub limit: Option<u32>,
}

impl MessagesQuery {
    /// The newest page.
    pub fn newest() -> Self {
        Self::default()
    }

    /// The page just before `seq`.
    pub fn before(seq: u64) -> Self {
        Self {
            before_seq: Some(seq),
            ..Self::default()
        }
    }

    /// The page just after `seq`.
    pub fn after(seq: u64) -> Self {
        Self {
            after_seq: Some(seq),
            ..Self::default()
        }
    }

    /// Sets the page size (the server caps it at 200).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("before_seq", self.before_seq.map(|v| v.to_string())),
            ("after_seq", self.after_seq.map(|v| v.to_string())),
            ("limit", self.limit.map(|v| v.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// The answer to [`Client::send_http`].
///
/// ```no_run
/// # async fn demo(client: confab_client::Client, conv: confab_client::ConversationId)
/// # -> confab_client::Result<()> {
/// let sent = client.send_http(conv, Some("c-1".into()), "hi").await?;
/// let again = client.send_http(conv, Some("c-1".into()), "hi").await?;
/// assert!(!sent.deduplicated && again.deduplicated);
/// assert_eq!(sent.message.id, again.message.id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The stored message, with its `id`, `seq` and `created_at`.
    pub message: Message,
    /// True when the server already had a message with this `client_msg_id` and returned
    /// it (200) instead of storing a new one (201).
    pub deduplicated: bool,
}

impl Client {
    /// A client for the server at `base_url` (like `http://127.0.0.1:8080`), without a
    /// token, with [`DEFAULT_HTTP_CONNECT_TIMEOUT`] and [`DEFAULT_REQUEST_TIMEOUT`].
    ///
    /// ```
    /// let client = confab_client::Client::new("http://127.0.0.1:8080").unwrap();
    /// assert_eq!(client.base_url(), "http://127.0.0.1:8080");
    /// assert!(confab_client::Client::new("127.0.0.1:8080").is_err());
    /// ```
    pub fn new(base_url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_HTTP_CONNECT_TIMEOUT)
            .timeout(DEFAULT_REQUEST_TIMEOUT)
            .build()?;
        Self::with_http_client(base_url, http)
    }

    /// A client that uses a `reqwest::Client` configured by the caller (timeouts, pool,
    /// proxies).
    ///
    /// ```
    /// let http = reqwest::Client::new();
    /// let client = confab_client::Client::with_http_client("http://127.0.0.1:8080", http);
    /// assert!(client.is_ok());
    /// ```
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Self> {
        Ok(Self {
            http,
            base: normalize_base(base_url)?.into(),
            token: None,
        })
    }

    /// A copy of this client that sends `token` (from [`Client::login`]) as
    /// `Authorization: Bearer`. The copy shares the connection pool.
    ///
    /// ```
    /// let anon = confab_client::Client::new("http://127.0.0.1:8080").unwrap();
    /// let authed = anon.with_token("t0k3n");
    /// assert_eq!(authed.token(), Some("t0k3n"));
    /// assert_eq!(anon.token(), None);
    /// ```
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.into().into()),
        }
    }

    /// The token this client sends, if any.
    ///
    /// ```
    /// let client = confab_client::Client::new("http://127.0.0.1:8080").unwrap();
    /// assert!(client.token().is_none());
    /// ```
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL, without a trailing slash.
    ///
    /// ```
    /// let client = confab_client::Client::new("http://127.0.0.1:8080/").unwrap();
    /// assert_eq!(client.base_url(), "http://127.0.0.1:8080");
    /// ```
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A [`ConnectionBuilder`] for the WebSocket of the same server with the same token;
    /// [`Error::MissingToken`] without one.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let (connection, mut events) = client.connection_builder()?.connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_builder(&self) -> Result<ConnectionBuilder> {
        let token = self.token.as_deref().ok_or(Error::MissingToken)?;
        Ok(ConnectionBuilder::new(&self.base, token))
    }

    // ---- auth ------------------------------------------------------------------------

    /// `POST /v1/auth/signup`: creates an account. `display_name` defaults to the
    /// username. A taken username is [`ErrorCode::Conflict`](crate::ErrorCode::Conflict).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let user = client.signup("ada", "correct horse", Some("Ada L.")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn signup(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<User> {
        let req = SignupRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: display_name.map(str::to_owned),
        };
        let resp: UserResponse = self
            .json(self.request(Method::POST, "/v1/auth/signup").json(&req))
            .await?;
        Ok(resp.user)
    }

    /// `POST /v1/auth/login`: creates a device and its token. Use
    /// [`Client::with_token`] with the answer's token for the calls that need it.
    ///
    /// ```no_run
    /// # async fn demo(anon: confab_client::Client) -> confab_client::Result<()> {
    /// let login = anon.login("ada", "correct horse", Some("phone")).await?;
    /// let ada = anon.with_token(login.token);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
    ) -> Result<LoginResponse> {
        let req = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: device_name.map(str::to_owned),
        };
        self.json(self.request(Method::POST, "/v1/auth/login").json(&req))
            .await
    }

    /// `POST /v1/auth/logout`: the token stops working everywhere at once.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// client.logout().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn logout(&self) -> Result<()> {
        self.empty(self.request(Method::POST, "/v1/auth/logout"))
            .await
    }

    // ---- users and devices -----------------------------------------------------------

    /// `GET /v1/me`: the caller's profile.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let me = client.me().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn me(&self) -> Result<User> {
        let resp: UserResponse = self.json(self.request(Method::GET, "/v1/me")).await?;
        Ok(resp.user)
    }

    /// `PATCH /v1/me`: changes the caller's display name (at most 64 characters).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let me = client.update_me("Ada Lovelace").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_me(&self, display_name: &str) -> Result<User> {
        let req = UpdateMeRequest {
            display_name: display_name.to_owned(),
        };
        let resp: UserResponse = self
            .json(self.request(Method::PATCH, "/v1/me").json(&req))
            .await?;
        Ok(resp.user)
    }

    /// `POST /v1/me/password`: changes the caller's password. Every other device of the
    /// account is logged out (its sessions close with 4001); this one stays.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// client.change_password("old horse battery", "correct horse staple").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn change_password(&self, current: &str, new: &str) -> Result<()> {
        let req = ChangePasswordRequest {
            current_password: current.to_owned(),
            new_password: new.to_owned(),
        };
        self.empty(self.request(Method::POST, "/v1/me/password").json(&req))
            .await
    }

    /// `GET /v1/users/{id}`.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let user = client.user(confab_client::UserId(42)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn user(&self, id: UserId) -> Result<User> {
        let resp: UserResponse = self
            .json(self.request(Method::GET, &format!("/v1/users/{id}")))
            .await?;
        Ok(resp.user)
    }

    /// `GET /v1/users?username=NAME`; an unknown name is
    /// [`ErrorCode::NotFound`](crate::ErrorCode::NotFound).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let bob = client.user_by_username("bob").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn user_by_username(&self, username: &str) -> Result<User> {
        let rb = self
            .request(Method::GET, "/v1/users")
            .query(&[("username", username)]);
        let resp: UserResponse = self.json(rb).await?;
        Ok(resp.user)
    }

    /// `GET /v1/me/privacy`: what the caller shares (last seen, read receipts).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let privacy = client.privacy().await?;
    /// println!("last seen shown: {}", privacy.last_seen);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn privacy(&self) -> Result<Privacy> {
        let resp: PrivacyResponse = self
            .json(self.request(Method::GET, "/v1/me/privacy"))
            .await?;
        Ok(resp.privacy)
    }

    /// `PATCH /v1/me/privacy`: changes what the caller shares (the fields given). Hiding
    /// one hides the others' from the caller too.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// use confab_client::PrivacyChange;
    /// let change = PrivacyChange { read_receipts: Some(false), ..Default::default() };
    /// client.change_privacy(change).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn change_privacy(&self, change: PrivacyChange) -> Result<Privacy> {
        let resp: PrivacyResponse = self
            .json(self.request(Method::PATCH, "/v1/me/privacy").json(&change))
            .await?;
        Ok(resp.privacy)
    }

    /// `GET /v1/blocks`: whom the caller blocked, the newest first.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// for b in client.blocks().await? {
    ///     println!("{} since {:?}", b.user_id, b.created_at);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn blocks(&self) -> Result<Vec<BlockedUser>> {
        let resp: BlocksResponse = self.json(self.request(Method::GET, "/v1/blocks")).await?;
        Ok(resp.blocks)
    }

    /// `PUT /v1/blocks/{user_id}`: blocks a user (again is harmless). They can no longer
    /// write to the caller directly, start a conversation with them or add them to a group,
    /// and neither sees the other's presence or typing; shared groups carry on.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, troll: confab_client::UserId)
    /// # -> confab_client::Result<()> {
    /// client.block(troll).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn block(&self, user: UserId) -> Result<()> {
        self.empty(self.request(Method::PUT, &format!("/v1/blocks/{user}")))
            .await
    }

    /// `DELETE /v1/blocks/{user_id}`: lifts a block (none is harmless).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, friend: confab_client::UserId)
    /// # -> confab_client::Result<()> {
    /// client.unblock(friend).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unblock(&self, user: UserId) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/v1/blocks/{user}")))
            .await
    }

    /// `GET /v1/devices`: the caller's logged-in devices.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let others = client.devices().await?.into_iter().filter(|d| !d.current).count();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn devices(&self) -> Result<Vec<Device>> {
        let resp: DevicesResponse = self.json(self.request(Method::GET, "/v1/devices")).await?;
        Ok(resp.devices)
    }

    /// `DELETE /v1/devices/{id}`: logs that device out.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// client.remove_device(confab_client::DeviceId(7)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_device(&self, id: DeviceId) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/v1/devices/{id}")))
            .await
    }

    // ---- conversations ---------------------------------------------------------------

    /// `POST /v1/conversations/direct`: the direct conversation with `user_id`, made on
    /// first use; the same pair always gets the same conversation.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let bob = client.user_by_username("bob").await?;
    /// let chat = client.direct(bob.id).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn direct(&self, user_id: UserId) -> Result<Conversation> {
        let req = DirectRequest { user_id };
        let resp: ConversationResponse = self
            .json(
                self.request(Method::POST, "/v1/conversations/direct")
                    .json(&req),
            )
            .await?;
        Ok(resp.conversation)
    }

    /// `POST /v1/groups`: a group with the caller as admin plus `member_ids` (at most 100
    /// members in all, else [`ErrorCode::GroupFull`](crate::ErrorCode::GroupFull)).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, bob: confab_client::UserId)
    /// # -> confab_client::Result<()> {
    /// let group = client.create_group("Book club", &[bob]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_group(&self, title: &str, member_ids: &[UserId]) -> Result<Conversation> {
        let req = CreateGroupRequest {
            title: title.to_owned(),
            member_ids: member_ids.to_vec(),
        };
        let resp: ConversationResponse = self
            .json(self.request(Method::POST, "/v1/groups").json(&req))
            .await?;
        Ok(resp.conversation)
    }

    /// `PATCH /v1/conversations/{id}/settings`: changes the caller's own settings for a
    /// conversation (the fields given; the rest stay) and answers them as they now are.
    /// Each of the user's connections gets [`Event::Settings`](crate::Event::Settings).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, group: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// use confab_client::{NotifyLevel, SettingsChange, Timestamp};
    /// let tomorrow = Timestamp(Timestamp::now().0 + 24 * 3600 * 1000);
    /// let change = SettingsChange {
    ///     notify: Some(NotifyLevel::Mentions),
    ///     notify_until: Some(tomorrow),
    ///     archived: Some(true),
    ///     ..Default::default()
    /// };
    /// let settings = client.change_settings(group, change).await?;
    /// assert!(settings.archived);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn change_settings(
        &self,
        id: ConversationId,
        change: SettingsChange,
    ) -> Result<ConversationSettings> {
        let resp: SettingsResponse = self
            .json(
                self.request(Method::PATCH, &format!("/v1/conversations/{id}/settings"))
                    .json(&change),
            )
            .await?;
        Ok(resp.settings)
    }

    /// `PATCH /v1/groups/{id}`: renames a group (admin only).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, group: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// client.rename_group(group, "Book club (2027)").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rename_group(&self, id: ConversationId, title: &str) -> Result<Conversation> {
        let req = RenameGroupRequest {
            title: title.to_owned(),
        };
        let resp: ConversationResponse = self
            .json(
                self.request(Method::PATCH, &format!("/v1/groups/{id}"))
                    .json(&req),
            )
            .await?;
        Ok(resp.conversation)
    }

    /// `POST /v1/groups/{id}/members`: adds a member (admin only).
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, group: confab_client::ConversationId,
    /// # carol: confab_client::UserId) -> confab_client::Result<()> {
    /// let group = client.add_member(group, carol).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add_member(&self, id: ConversationId, user_id: UserId) -> Result<Conversation> {
        let req = AddMemberRequest { user_id };
        let resp: ConversationResponse = self
            .json(
                self.request(Method::POST, &format!("/v1/groups/{id}/members"))
                    .json(&req),
            )
            .await?;
        Ok(resp.conversation)
    }

    /// `DELETE /v1/groups/{id}/members/{user_id}`: an admin removes anyone; anyone
    /// removes themself, which is leaving the group.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, group: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// let me = client.me().await?;
    /// client.remove_member(group, me.id).await?; // leave
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_member(&self, id: ConversationId, user_id: UserId) -> Result<()> {
        self.empty(self.request(
            Method::DELETE,
            &format!("/v1/groups/{id}/members/{user_id}"),
        ))
        .await
    }

    /// `GET /v1/conversations`, every page: the caller's conversations, most recent
    /// activity first, each once. Activity during the walk moves a conversation up the
    /// list: one that moved onto a page already read is missed by this walk (its `message`
    /// events arrive all the same; fetch it with [`conversation`](Self::conversation)). For
    /// a user in thousands of groups, page with
    /// [`conversations_page`](Self::conversations_page) instead.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let unread: u64 = client.conversations().await?.iter().map(|c| c.unread).sum();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn conversations(&self) -> Result<Vec<Conversation>> {
        let mut all: Vec<Conversation> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = None;
        loop {
            let page = self.conversations_page(cursor.as_deref(), None).await?;
            for conversation in page.conversations {
                // One that moved down a page while we walked would come twice.
                if seen.insert(conversation.id) {
                    all.push(conversation);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `GET /v1/conversations?cursor=&limit=`: one page of the caller's conversations (100
    /// unless `limit` says otherwise, at most 200); its `next_cursor` asks for the next.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let first = client.conversations_page(None, Some(20)).await?;
    /// if let Some(cursor) = &first.next_cursor {
    ///     let second = client.conversations_page(Some(cursor), Some(20)).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn conversations_page(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ConversationsResponse> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        self.json(self.request(Method::GET, "/v1/conversations").query(&query))
            .await
    }

    /// `GET /v1/conversations/{id}`.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, id: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// let conversation = client.conversation(id).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        let resp: ConversationResponse = self
            .json(self.request(Method::GET, &format!("/v1/conversations/{id}")))
            .await?;
        Ok(resp.conversation)
    }

    // ---- messages --------------------------------------------------------------------

    /// `GET /v1/conversations/{id}/messages`: one page of history, ascending by seq.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, id: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// use confab_client::MessagesQuery;
    ///
    /// let newest = client.messages(id, MessagesQuery::newest()).await?;
    /// if let Some(first) = newest.first() {
    ///     let older = client.messages(id, MessagesQuery::before(first.seq).limit(200)).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn messages(&self, id: ConversationId, query: MessagesQuery) -> Result<Vec<Message>> {
        let rb = self
            .request(Method::GET, &format!("/v1/conversations/{id}/messages"))
            .query(&query.pairs());
        let resp: MessagesResponse = self.json(rb).await?;
        Ok(resp.messages)
    }

    /// `GET /v1/conversations/{id}/messages/{seq}`: one message as it stands now (what a
    /// reply quotes); `not_found` when the caller cannot see a message there.
    pub async fn message(&self, id: ConversationId, seq: u64) -> Result<Message> {
        let rb = self.request(
            Method::GET,
            &format!("/v1/conversations/{id}/messages/{seq}"),
        );
        let resp: MessageResponse = self.json(rb).await?;
        Ok(resp.message)
    }

    /// `POST /v1/conversations/{id}/messages`. Without a `client_msg_id` a random one is
    /// made; pass your own to retry safely after a failure: the server answers a repeat
    /// with the original message ([`Sent::deduplicated`]). The body is checked against the
    /// contract's limits before anything is sent.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, id: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// let sent = client.send_http(id, None, "hello").await?;
    /// println!("stored as seq {}", sent.message.seq);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_http(
        &self,
        id: ConversationId,
        client_msg_id: Option<String>,
        body: impl Into<String>,
    ) -> Result<Sent> {
        let body = Body::new(body.into())?;
        let text = Action::Text {
            body,
            reply_to: None,
        };
        self.write_http(id, client_msg_id, text).await
    }

    /// `POST /v1/conversations/{id}/messages` with a message or a change to one (a reply,
    /// an edit, a delete, a reaction): see [`Connection::write`](crate::Connection::write).
    /// A retry with the same `client_msg_id` is applied once.
    pub async fn write_http(
        &self,
        id: ConversationId,
        client_msg_id: Option<String>,
        action: Action,
    ) -> Result<Sent> {
        let client_msg_id = crate::endpoint::client_msg_id(client_msg_id)?;
        let req = SendRequest {
            client_msg_id,
            kind: action.kind(),
            body: action.body().to_owned(),
            target_seq: action.target(),
            reply_to: action.reply_to(),
        };
        let resp = self
            .execute(
                self.request(Method::POST, &format!("/v1/conversations/{id}/messages"))
                    .json(&req),
            )
            .await?;
        let deduplicated = resp.status() != StatusCode::CREATED;
        let resp: MessageResponse = decode(resp).await?;
        Ok(Sent {
            message: resp.message,
            deduplicated,
        })
    }

    /// `POST /v1/conversations/{id}/read`: the caller has read up to `seq`.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, id: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// let conversation = client.conversation(id).await?;
    /// client.read(id, conversation.last_seq).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&self, id: ConversationId, seq: u64) -> Result<()> {
        let req = ReadRequest { seq };
        self.empty(
            self.request(Method::POST, &format!("/v1/conversations/{id}/read"))
                .json(&req),
        )
        .await
    }

    /// `GET /v1/sync?after=&limit=`: the caller's inbox entries after `after`, ascending,
    /// and the inbox head. `limit` defaults to the server's and is capped at 200.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// let mut cursor = 0;
    /// loop {
    ///     let page = client.sync(cursor, Some(200)).await?;
    ///     for entry in &page.entries {
    ///         cursor = entry.inbox_seq;
    ///     }
    ///     if page.entries.is_empty() || cursor >= page.inbox_seq {
    ///         break;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sync(&self, after: u64, limit: Option<u32>) -> Result<SyncResponse> {
        let mut query = vec![("after", after.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        self.json(self.request(Method::GET, "/v1/sync").query(&query))
            .await
    }

    // ---- presence and discovery ------------------------------------------------------

    /// `GET /v1/presence?user_ids=...`: the status of each user that exists. More than 200
    /// ids are asked in several requests; none at all makes no request.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client, bob: confab_client::UserId)
    /// # -> confab_client::Result<()> {
    /// for p in client.presence(&[bob]).await? {
    ///     println!("{}: {:?}", p.user_id, p.status);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn presence(&self, user_ids: &[UserId]) -> Result<Vec<Presence>> {
        let mut all = Vec::with_capacity(user_ids.len());
        // No ids, no request: the server takes 1 to 200 at a time.
        for chunk in user_ids.chunks(PRESENCE_QUERY_MAX) {
            let ids = chunk
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let resp: PresenceResponse = self
                .json(self.request(Method::GET, &format!("/v1/presence?user_ids={ids}")))
                .await?;
            all.extend(resp.presence);
        }
        Ok(all)
    }

    /// `GET /v1/discovery`: the nodes to connect to, best first. Needs no token.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// if let Some(best) = client.discovery().await?.first() {
    ///     println!("connect to {}", best.url);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn discovery(&self) -> Result<Vec<ServerInfo>> {
        let resp: DiscoveryResponse = self
            .json(self.request(Method::GET, "/v1/discovery"))
            .await?;
        Ok(resp.servers)
    }

    /// `GET /healthz`: `Ok` when the server answers with a success status.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// client.healthz().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn healthz(&self) -> Result<()> {
        self.empty(self.request(Method::GET, "/healthz")).await
    }

    // ---- plumbing --------------------------------------------------------------------

    /// A request to `path` (starting with `/`) with the token, if any.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => rb.bearer_auth(token),
            None => rb,
        }
    }

    /// Sends the request; a failing status becomes an [`Error`].
    pub(crate) async fn execute(&self, rb: RequestBuilder) -> Result<Response> {
        let resp = rb.send().await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from(resp).await)
        }
    }

    /// Sends the request and decodes a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        decode(self.execute(rb).await?).await
    }

    /// Sends the request and ignores the answer's body (204 routes).
    pub(crate) async fn empty(&self, rb: RequestBuilder) -> Result<()> {
        self.execute(rb).await.map(drop)
    }
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T> {
    let bytes = resp.bytes().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The [`Error`] of a failing answer, reading at most [`ERROR_BODY_MAX`] bytes of it.
async fn error_from(mut resp: Response) -> Error {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after_secs);
    let mut body = Vec::new();
    // A read error ends the body early: the status alone still says what happened, and a
    // body cut short just fails to parse.
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = ERROR_BODY_MAX - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_MAX {
            break;
        }
    }
    Error::from_http(status, &body, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_query_pairs() {
        assert!(MessagesQuery::newest().pairs().is_empty());
        assert_eq!(
            MessagesQuery::before(10).limit(5).pairs(),
            vec![("before_seq", "10".to_owned()), ("limit", "5".to_owned())]
        );
        assert_eq!(
            MessagesQuery::after(3).pairs(),
            vec![("after_seq", "3".to_owned())]
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_token("secret");
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn connection_builder_needs_a_token() {
        let anon = Client::new("http://127.0.0.1:1").unwrap();
        assert!(matches!(
            anon.connection_builder(),
            Err(Error::MissingToken)
        ));
        assert!(anon.with_token("t").connection_builder().is_ok());
    }

    #[tokio::test]
    async fn bad_sends_fail_before_the_network() {
        // Port 1 on loopback: nothing listens, so reaching the network would be a
        // transport error rather than these.
        let client = Client::new("http://127.0.0.1:1").unwrap().with_token("t");
        let conv = ConversationId(1);
        let e = client.send_http(conv, None, "").await.unwrap_err();
        assert_eq!(e.code(), Some(confab_proto::ErrorCode::InvalidRequest));
        let e = client
            .send_http(conv, None, "x".repeat(100_000))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(confab_proto::ErrorCode::MessageTooLong));
        let e = client
            .send_http(conv, Some("has space".into()), "hi")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidClientMsgId(_)));
    }
}
