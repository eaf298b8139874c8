//! Accounts: signup, login (one device per login), token authentication and revocation,
//! password change. Passwords are hashed with Argon2id on the blocking pool, a few at a
//! time, so logins never stall the async workers or take every core. Wrong passwords are
//! slowed per account (`guesses.rs`).

mod guesses;

use crate::bus::{Bus, UserEvent};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_token, token_hash};
use crate::names::Name;
use crate::store::{DeviceRecord, NewDevice, NewUser, Store};
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use confab_proto::limits::{DEVICES_PER_USER, PASSWORD_MAX, PASSWORD_MIN, valid_username};
use confab_proto::{DeviceId, ErrorCode, LoginResponse, User, UserId};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The account service.
pub struct Accounts {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    argon: Arc<Argon2<'static>>,
    hashing: Semaphore,
    /// Verified against when the username does not exist, so both cases take as long.
    dummy_hash: String,
    guesses: guesses::Guesses,
}

impl Accounts {
    /// Builds the service with the configured Argon2id costs.
    pub fn new(config: &Config, store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Result<Self, String> {
        let params = Params::new(
            config.password_hash_memory_kib,
            config.password_hash_iterations,
            1,
            None,
        )
        .map_err(|e| format!("invalid password hash settings: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(b"not a real password", &SaltString::generate(&mut OsRng))
            .map_err(|e| e.to_string())?
            .to_string();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            guesses: guesses::Guesses::new(store.clone()),
            store,
            bus,
            argon: Arc::new(argon),
            hashing: Semaphore::new(cores),
            dummy_hash,
        })
    }

    /// Creates an account.
    pub async fn signup(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> ApiResult<User> {
        if !valid_username(username) {
            return Err(ApiError::invalid(
                "usernames are 3-32 characters of a-z 0-9 _ . -",
            ));
        }
        check_password(password)?;
        let display_name = Name::Display.check(display_name.unwrap_or(username))?;
        let hash = self.hash(password.to_owned()).await?;
        Ok(self
            .store
            .create_user(NewUser {
                username: username.to_owned(),
                display_name,
                password_hash: hash,
            })
            .await?)
    }

    /// Checks the password and makes a new device with a new token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
    ) -> ApiResult<LoginResponse> {
        let refused = || ApiError::new(ErrorCode::Unauthorized, "wrong username or password");
        if !valid_username(username) {
            return Err(refused()); // no such account, and nothing worth remembering
        }
        let name = match device_name {
            Some(name) => Name::Device.check(name)?,
            None => "device".to_owned(),
        };
        let attempt = self.begin_attempt(username).await?;
        let record = self.store.user_by_username(username).await?;
        let hash = record
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |r| r.password_hash.clone());
        let matches = self.verify(password.to_owned(), hash).await?;
        let Some(record) = record.filter(|_| matches) else {
            attempt.failed().await?;
            return Err(refused());
        };
        attempt.succeeded().await?;
        let token = new_token();
        let device = self
            .store
            .create_device(NewDevice {
                user_id: record.user.id,
                name,
                token_hash: token_hash(&token),
            })
            .await?;
        // The new device is the most recently active, so it is never the one evicted.
        for evicted in self
            .store
            .evict_idle_devices(record.user.id, DEVICES_PER_USER)
            .await?
        {
            self.bus
                .publish(record.user.id, UserEvent::Revoked(evicted));
        }
        Ok(LoginResponse {
            token,
            device_id: device.id,
            user: record.user,
        })
    }

    /// Changes `user`'s password, given the current one, and logs out every other device:
    /// whoever learned the old password is out. The calling device stays logged in.
    pub async fn change_password(
        &self,
        user: UserId,
        device: DeviceId,
        current: &str,
        new: &str,
    ) -> ApiResult<()> {
        check_password(new)?;
        self.confirm(user, current).await?;
        let hash = self.hash(new.to_owned()).await?;
        self.store.set_password_hash(user, &hash).await?;
        for other in self.store.delete_other_devices(user, device).await? {
            self.bus.publish(user, UserEvent::Revoked(other));
        }
        Ok(())
    }

    /// Checks that `password` is `user`'s, counting a wrong one like a failed login
    /// (`forbidden`, then `rate_limited`).
    pub async fn confirm(&self, user: UserId, password: &str) -> ApiResult<()> {
        let username = self
            .store
            .user(user)
            .await?
            .ok_or_else(ApiError::unauthorized)?
            .username;
        let attempt = self.begin_attempt(&username).await?;
        let record = self
            .store
            .user_by_username(&username)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if !self
            .verify(password.to_owned(), record.password_hash)
            .await?
        {
            attempt.failed().await?;
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "the current password is wrong",
            ));
        }
        attempt.succeeded().await?;
        Ok(())
    }

    /// Deletes `user`'s account (see `Users::delete_account` for what goes and what
    /// stays); every device is logged out at once, its sessions closed with 4001.
    pub async fn delete(&self, user: UserId) -> ApiResult<()> {
        for device in self.store.delete_account(user).await? {
            self.bus.publish(user, UserEvent::Revoked(device));
        }
        Ok(())
    }

    async fn begin_attempt(&self, username: &str) -> ApiResult<guesses::Attempt<'_>> {
        self.guesses.begin(username).await.map_err(|refused| match refused {
            guesses::Refused::Wait(wait) => ApiError::rate_limited_for(
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "too many wrong passwords for this account; wait retry_after_ms before trying again",
            ),
            guesses::Refused::Store(e) => e.into(),
        })
    }

    /// The device a token belongs to; `unauthorized` when none does.
    pub async fn authenticate(&self, token: &str) -> ApiResult<DeviceRecord> {
        self.store
            .device_by_token(&token_hash(token))
            .await?
            .ok_or_else(ApiError::unauthorized)
    }

    /// Removes a device: its token stops working at once and its sessions close with 4001.
    pub async fn revoke(&self, user: UserId, device: DeviceId) -> ApiResult<()> {
        if !self.store.delete_device(user, device).await? {
            return Err(ApiError::not_found("device"));
        }
        self.bus.publish(user, UserEvent::Revoked(device));
        Ok(())
    }

    async fn hash(&self, password: String) -> ApiResult<String> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|h| h.to_string())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    async fn verify(&self, password: String, hash: String) -> ApiResult<bool> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            // The stored hash carries its own parameters, so old hashes keep verifying.
            let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;
            Ok::<_, String>(argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN {
        return Err(ApiError::invalid("passwords are at least 8 characters"));
    }
    if chars > PASSWORD_MAX {
        return Err(ApiError::invalid("passwords are at most 1024 characters"));
    }
    Ok(())
}
