//! The data directory holds every message and password hash: only the server's own account
//! may read it, whatever the umask.

use crate::harness::test_config;
use confab_server::App;
use std::os::unix::fs::PermissionsExt;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_dir_and_its_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let app = App::open(test_config(&dir)).await.unwrap();

    // While it runs: the database, its write-ahead log and shared memory (the VAPID key is
    // in the database, shared like the rest).
    assert_eq!(mode(&dir), 0o700, "the data dir");
    for name in ["confab.db", "confab.db-wal", "confab.db-shm"] {
        assert!(
            dir.join(name).exists(),
            "{name} is there while the node runs"
        );
    }
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    // One process per data directory: a second one refuses to start, and says why.
    let second = App::open(test_config(&dir)).await;
    let Err(e) = second else {
        panic!("a second node on the same data dir must not start")
    };
    assert!(e.to_string().contains("another confab process"), "{e}");
    app.store.close().await;
    drop(app);

    // A data dir and database left open by an older version are closed up at start.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.join("confab.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let app = App::open(test_config(&dir)).await.unwrap();
    app.store.close().await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("confab.db")), 0o600);
}
