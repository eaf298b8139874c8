//! The caller's account as a whole: deleting it, and exporting everything it can see.

use crate::error::Result;
use crate::http::Client;
use confab_proto::{AccountExport, DeleteAccountRequest};
use reqwest::Method;
use std::io::Write;

impl Client {
    /// `DELETE /v1/me`: deletes the caller's account, given its password. It leaves every
    /// group, its messages stay for the others as from "Deleted user", and every device is
    /// logged out (this client's token stops working). `forbidden` for a wrong password.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> confab_client::Result<()> {
    /// client.delete_account("correct horse staple").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_account(&self, password: &str) -> Result<()> {
        let req = DeleteAccountRequest {
            password: password.to_owned(),
        };
        self.empty(self.request(Method::DELETE, "/v1/me").json(&req))
            .await
    }

    /// `GET /v1/me/export`: everything the caller can see, parsed. For an account with a
    /// long history use [`Client::export_to`], which keeps none of it in memory (and give
    /// the client a longer request timeout with [`Client::with_http_client`]).
    pub async fn export(&self) -> Result<AccountExport> {
        self.json(self.request(Method::GET, "/v1/me/export")).await
    }

    /// `GET /v1/me/export`, written to `out` as it arrives; the bytes written.
    ///
    /// ```no_run
    /// # async fn demo(client: confab_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut file = std::fs::File::create("confab-export.json")?;
    /// client.export_to(&mut file).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn export_to(&self, out: &mut impl Write) -> Result<u64> {
        let mut resp = self
            .execute(self.request(Method::GET, "/v1/me/export"))
            .await?;
        let mut written = 0;
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }
}
