//! Bootstrap tokens ([`BootstrapTokenStore`](crate::ports::BootstrapTokenStore)).

use std::sync::Arc;

use crate::ports::{BootstrapToken, Store, WorkspaceLimits};
use crate::testkit::sample_workspace;

use super::{T0, at, new_user, unique_github_id};

/// Bootstrap tokens are single use and expire.
pub async fn bootstrap_tokens(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "boot", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");
    let token = |hash: &str, expires: i64| BootstrapToken {
        token_hash: hash.into(),
        workspace_id: ws.id,
        owner,
        created_at: T0,
        expires_at: at(expires),
    };
    let h1 = format!("{}-a", ws.id);
    let h2 = format!("{}-b", ws.id);
    store.create_bootstrap_token(&token(&h1, 900)).await.expect("create");
    store.create_bootstrap_token(&token(&h2, 900)).await.expect("create");
    let found = store.find_bootstrap_token(&h1, at(10)).await.expect("find").expect("valid");
    assert_eq!(found.workspace_id, ws.id);
    assert!(store.find_bootstrap_token(&h1, at(10)).await.expect("find again").is_some(), "finding consumes nothing");
    assert!(store.find_bootstrap_token(&h2, at(900)).await.expect("find expired").is_none(), "not at expiry");
    let redeemed = store.redeem_bootstrap_token(&h1, at(10)).await.expect("redeem").expect("valid");
    assert_eq!(redeemed.workspace_id, ws.id);
    assert_eq!(redeemed.owner, owner);
    assert!(store.redeem_bootstrap_token(&h1, at(11)).await.expect("again").is_none(), "single use");
    assert!(store.find_bootstrap_token(&h1, at(11)).await.expect("find used").is_none(), "a used token is not found");
    assert!(store.redeem_bootstrap_token(&h2, at(900)).await.expect("expired").is_none(), "not at or after expiry");
    assert!(store.redeem_bootstrap_token("unknown", at(1)).await.expect("unknown").is_none());
}

/// 20 concurrent redemptions of one token: exactly one succeeds.
pub async fn concurrent_redemptions_succeed_once(store: Arc<dyn Store>) {
    let owner = new_user(&*store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "race", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");
    let hash = format!("{}-race", ws.id);
    store
        .create_bootstrap_token(&BootstrapToken {
            token_hash: hash.clone(),
            workspace_id: ws.id,
            owner,
            created_at: T0,
            expires_at: at(900),
        })
        .await
        .expect("create");
    let mut handles = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let hash = hash.clone();
        handles.push(tokio::spawn(async move { store.redeem_bootstrap_token(&hash, at(1)).await }));
    }
    let mut wins = 0;
    for handle in handles {
        if handle.await.expect("task").expect("redeem").is_some() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "a bootstrap token is redeemed exactly once");
}
