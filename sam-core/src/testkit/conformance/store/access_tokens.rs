//! Personal access tokens ([`AccessTokenStore`](crate::ports::AccessTokenStore)).

use crate::domain::{AccessToken, TokenScope, UserId};
use crate::ports::{Store, StoreErrorKind};

use super::{T0, at, new_user, unique_github_id};

/// Found by digest while live; listed and revoked by their owner only; at
/// most `limit` per user; use is recorded.
pub async fn access_tokens(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let stranger = new_user(store, unique_github_id()).await;
    let token = |user: UserId, n: u8, expires: Option<i64>| AccessToken {
        id: format!("{}-{n}", user.as_uuid().simple()),
        user_id: user,
        name: format!("laptop {n}"),
        token_hash: format!("{:064x}", u128::from(n) + u128::from(user.as_uuid().as_u128() as u64)),
        scope: if n.is_multiple_of(2) { TokenScope::Read } else { TokenScope::Write },
        created_at: at(i64::from(n)),
        expires_at: expires.map(at),
        last_used_at: None,
    };
    let (t1, t2, t3) = (token(owner, 1, Some(100)), token(owner, 2, None), token(owner, 3, None));
    store.insert_access_token(&t1, 2).await.expect("first");
    store.insert_access_token(&t2, 2).await.expect("second");
    let over = store.insert_access_token(&t3, 2).await.expect_err("over the limit");
    assert_eq!(over.kind(), StoreErrorKind::QuotaExceeded);
    store.insert_access_token(&token(stranger, 1, None), 2).await.expect("another user's own limit");

    assert_eq!(store.find_access_token(&t1.token_hash, at(50)).await.expect("find"), Some(t1.clone()));
    assert_eq!(store.find_access_token(&t1.token_hash, at(100)).await.expect("find expired"), None, "expired");
    assert_eq!(store.find_access_token(&"f".repeat(64), T0).await.expect("find unknown"), None);
    store.touch_access_token(&t2.token_hash, at(70)).await.expect("touch");
    let found = store.find_access_token(&t2.token_hash, at(80)).await.expect("find").expect("live");
    assert_eq!((found.last_used_at, found.scope, found.name.as_str()), (Some(at(70)), TokenScope::Read, "laptop 2"));

    let listed: Vec<String> = store.list_access_tokens(owner).await.expect("list").into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [t2.id.clone(), t1.id.clone()], "newest first, expired ones too, only the owner's");
    assert!(!store.delete_access_token(stranger, &t1.id).await.expect("a stranger revokes"), "not theirs");
    assert!(store.find_access_token(&t1.token_hash, at(50)).await.expect("find").is_some());
    assert!(store.delete_access_token(owner, &t1.id).await.expect("revoke"));
    assert!(!store.delete_access_token(owner, &t1.id).await.expect("revoke again"));
    assert_eq!(store.find_access_token(&t1.token_hash, at(50)).await.expect("find revoked"), None);
    store.insert_access_token(&t3, 2).await.expect("room again after a revocation");
}
