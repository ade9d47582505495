//! What only the embedded store has to prove: its data outlives the process.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, expect_json};

#[tokio::test]
async fn a_restart_keeps_programs_and_the_generated_key() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("JWT_SECRET", "")]).await;
    let key = std::fs::read_to_string(app.data_path().join("jwt-secret")).expect("generated key");
    let program = app
        .create_program("Durable", json!("0.10"), json!(99.99))
        .await;
    let id = program["id"].as_str().expect("id").to_owned();

    let app = app.restart().await;
    let after = std::fs::read_to_string(app.data_path().join("jwt-secret")).expect("generated key");
    assert_eq!(after, key, "the generated key must survive a restart");
    let stored = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(stored, program);
}

/// A tmpfs of a few MiB that the test fills; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `Err(reason)` where this machine does not let the test mount one (not root, no tmpfs).
    fn mount() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if mounted.status.success() {
            Ok(Self { dir })
        } else {
            Err(String::from_utf8_lossy(&mounted.stderr).trim().to_owned())
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
        path
    }
}

impl SmallDisk {
    /// Gives `bytes` of the filler back.
    fn free(&self, filler: &std::path::Path, bytes: u64) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(filler)
            .expect("filler");
        let size = file.metadata().expect("filler size").len();
        file.set_len(size.saturating_sub(bytes))
            .expect("shrink filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// With `DATA_DIR` on a full disk, writes answer 503 and `/health` 503; once there is room
/// again, writes succeed without a restart, and everything acknowledged before is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_503s_and_writes_come_back_once_there_is_room() {
    let disk = match SmallDisk::mount() {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: cannot mount a small tmpfs here ({reason})");
            return;
        }
    };
    let data_dir = disk.path().display().to_string();
    let app = TestApp::spawn_with(Backend::Embedded, &[("DATA_DIR", data_dir.as_str())]).await;
    let mut acknowledged: Vec<String> = Vec::new();
    app.create_users(&["before-the-disk-filled"]).await;
    acknowledged.push("before-the-disk-filled".into());

    let filler = disk.fill();
    let mut refused = false;
    for batch in 0..50 {
        let hashes: Vec<String> = (0..500).map(|i| format!("b{batch}-{i}")).collect();
        let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
        let response = app.create_users_response(&refs).await;
        match response.status() {
            StatusCode::CREATED => acknowledged.extend(hashes),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                refused = true;
                break;
            }
            other => panic!(
                "a full disk answered {other}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
    assert!(refused, "the disk never filled up");
    assert_eq!(app.health().await, StatusCode::SERVICE_UNAVAILABLE);
    // A little room: small writes fit again, and their commits clear the writer's failure;
    // the health check still says what a large request would meet.
    disk.free(&filler, 64 * 1024);
    let mut small = 0;
    for i in 0..5 {
        let hash = format!("small-{i}");
        if app.create_users_response(&[&hash]).await.status() == StatusCode::CREATED {
            acknowledged.push(hash);
            small += 1;
        }
    }
    assert!(small > 0, "no small write fitted in 64 KiB");
    // Checks at once each answer by a probe of their own: none takes another's word.
    let checks = futures_util::future::join_all((0..8).map(|_| app.health())).await;
    assert!(
        checks.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "health checks at once on a nearly full disk: {checks:?}"
    );

    std::fs::remove_file(filler).expect("room again");
    // Reads alone, with no write among them, come back.
    let mut read = false;
    for _ in 0..50 {
        let response = app.get("/statement/before-the-disk-filled/").await;
        if response.status() == StatusCode::OK {
            read = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(read, "reads did not come back without a restart");
    let mut written = false;
    for _ in 0..50 {
        let response = app.create_users_response(&["after-the-disk-emptied"]).await;
        if response.status() == StatusCode::CREATED {
            written = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(written, "writes did not come back without a restart");
    assert_eq!(app.health().await, StatusCode::OK);
    acknowledged.push("after-the-disk-emptied".into());
    for hash in acknowledged.iter().step_by(97).chain(acknowledged.last()) {
        let response = app.get(&format!("/statement/{hash}/")).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{hash} was acknowledged, then lost"
        );
    }
}
