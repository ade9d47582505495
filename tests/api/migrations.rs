//! Versioned migrations: recorded once applied, never run again, and run once by instances
//! that start together on one MongoDB database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use referral_api::{
    storage::{embedded, mongo},
    stores,
};

use crate::helpers::fresh_mongo_url;

const TIMEOUT: Duration = Duration::from_secs(15);

/// A MongoDB schema whose migrations (the given versions) count their runs, slowly enough
/// that instances starting together overlap.
fn counted_mongo(versions: &[u32], runs: &Arc<AtomicUsize>) -> mongo::Schema {
    let migration = |version| {
        let runs = runs.clone();
        let run: mongo::MigrationRun = Box::new(move |_| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            })
        });
        mongo::Migration {
            version,
            name: "counted",
            run,
        }
    };
    let mut schema = mongo::Schema::indexes(Vec::new());
    schema.migrations = versions.iter().copied().map(migration).collect();
    schema
}

fn counted_embedded(versions: &[u32], runs: &Arc<AtomicUsize>) -> embedded::Schema {
    let migration = |version| {
        let runs = runs.clone();
        let run: embedded::MigrationRun = Box::new(move |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        embedded::Migration {
            version,
            name: "counted",
            run,
        }
    };
    let mut schema = embedded::Schema::tables(Vec::new());
    schema.migrations = versions.iter().copied().map(migration).collect();
    schema
}

fn versions(schema_versions: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut versions: Vec<u32> = schema_versions.collect();
    versions.sort_unstable();
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_instances_starting_together_run_a_migration_once() {
    let url = fresh_mongo_url();
    let runs = Arc::new(AtomicUsize::new(0));
    let starts = (0..4).map(|_| {
        let (url, runs) = (url.clone(), runs.clone());
        tokio::spawn(async move {
            mongo::MongoStore::connect(&url, TIMEOUT, &counted_mongo(&[1, 2], &runs)).await
        })
    });
    for start in starts.collect::<Vec<_>>() {
        start.await.expect("task").expect("starts");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each migration ran once");
    let again = mongo::MongoStore::connect(&url, TIMEOUT, &counted_mongo(&[1, 2, 3], &runs))
        .await
        .expect("starts");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "only the new one ran");
    assert_eq!(
        again.applied_migrations().await.expect("read"),
        vec![1, 2, 3]
    );
}

/// The service's own migrations are recorded at the first start: a later start, offered
/// migrations under the same versions, runs none of them (and so reads no collection in full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_migrated_database_runs_no_migration_at_start() {
    let url = fresh_mongo_url();
    let declared = versions(stores::mongo_schema().migrations.iter().map(|m| m.version));
    assert!(!declared.is_empty());
    let first = mongo::MongoStore::connect(&url, TIMEOUT, &stores::mongo_schema())
        .await
        .expect("first start");
    assert_eq!(first.applied_migrations().await.expect("read"), declared);
    let runs = Arc::new(AtomicUsize::new(0));
    mongo::MongoStore::connect(&url, TIMEOUT, &counted_mongo(&declared, &runs))
        .await
        .expect("second start");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn embedded_a_migrated_file_runs_no_migration_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let declared = versions(
        stores::embedded_schema()
            .migrations
            .iter()
            .map(|m| m.version),
    );
    assert!(!declared.is_empty());
    let first = embedded::EmbeddedStore::open(dir.path(), stores::embedded_schema())
        .await
        .expect("first start");
    assert_eq!(first.applied_migrations().await.expect("read"), declared);
    drop(first);
    let runs = Arc::new(AtomicUsize::new(0));
    let second = embedded::EmbeddedStore::open(dir.path(), counted_embedded(&declared, &runs))
        .await
        .expect("second start");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    drop(second);
    let mut more = declared.clone();
    more.push(1000);
    embedded::EmbeddedStore::open(dir.path(), counted_embedded(&more, &runs))
        .await
        .expect("third start");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the new one ran");
}
