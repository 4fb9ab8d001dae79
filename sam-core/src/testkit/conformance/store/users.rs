//! Users and sessions ([`UserStore`](crate::ports::UserStore)).

use crate::domain::{NewSession, UserId};
use crate::ports::Store;
use crate::testkit::sample_new_user;

use super::{T0, at, new_user, unique_github_id};

/// Users are bound to the GitHub id; a second sign-in refreshes the profile.
pub async fn users(store: &dyn Store) {
    let gid = unique_github_id();
    let first = store.upsert_user(&sample_new_user(gid), T0).await.expect("create");
    let mut renamed = sample_new_user(gid);
    renamed.login = "renamed-login".into();
    renamed.email = None;
    let second = store.upsert_user(&renamed, at(60)).await.expect("refresh");
    assert_eq!(first.id, second.id, "same GitHub id, same user");
    assert_eq!(second.login, "renamed-login");
    assert_eq!(second.email, None);
    assert_eq!(second.created_at, T0);
    assert_eq!(second.updated_at, at(60));
    assert_eq!(store.get_user(first.id).await.expect("get"), Some(second.clone()));
    assert_eq!(store.get_user(UserId::new()).await.expect("get unknown"), None);
}

/// Sessions expire, slide, and end one by one or all at once.
pub async fn sessions(store: &dyn Store) {
    let user = new_user(store, unique_github_id()).await;
    let hash = |n: u8| format!("{:064x}", u128::from(n) + u128::from(user.as_uuid().as_u128() as u64));
    let s1 = NewSession { id_hash: hash(1), user_id: user, expires_at: at(100) };
    let created = store.create_session(&s1, T0).await.expect("create");
    assert_eq!(created.user_id, user);
    assert_eq!(store.get_session(&hash(1), at(50)).await.expect("get").map(|s| s.user_id), Some(user));
    assert!(store.get_session(&hash(1), at(100)).await.expect("get expired").is_none(), "expired at expires_at");
    assert!(store.touch_session(&hash(1), at(90), at(200)).await.expect("touch"));
    let touched = store.get_session(&hash(1), at(150)).await.expect("get").expect("slid");
    assert_eq!(touched.expires_at, at(200));
    assert_eq!(touched.last_seen_at, at(90));
    assert!(
        !store.touch_session(&hash(1), at(300), at(400)).await.expect("touch expired"),
        "an expired session cannot be revived"
    );
    assert!(!store.touch_session("unknown", at(1), at(2)).await.expect("touch unknown"));

    for n in 2..5 {
        store
            .create_session(&NewSession { id_hash: hash(n), user_id: user, expires_at: at(1000) }, T0)
            .await
            .expect("create");
    }
    store.delete_session(&hash(2)).await.expect("delete one");
    assert!(store.get_session(&hash(2), at(1)).await.expect("get").is_none());
    store.delete_session(&hash(2)).await.expect("deleting again is fine");
    assert!(store.delete_user_sessions(user).await.expect("delete all") >= 2);
    assert!(store.get_session(&hash(3), at(1)).await.expect("get").is_none());
}
