//! Slots, their waits and the body byte budget.

use super::*;

#[tokio::test]
async fn bounds_waiters_and_wait_time() {
    let limit = Arc::new(Slots::new("test", 1, 1, Duration::from_millis(50)));
    let held = limit.acquire().await.unwrap();
    let waiter = {
        let limit = limit.clone();
        tokio::spawn(async move { limit.acquire().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(
        limit.acquire().await,
        Err(CapacityError::Full { .. })
    ));
    assert!(matches!(
        waiter.await.unwrap(),
        Err(CapacityError::Timeout { .. })
    ));
    drop(held);
    assert!(limit.acquire().await.is_ok());
    assert_eq!(limit.snapshot().rejected_total, 2);
    assert_eq!(limit.snapshot().waiting, 0);
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_slots() {
    let limit = Slots::new("upload", 4, 10, Duration::from_millis(50));
    limit.set_per_address_cap(2);
    let (a, b) = ("127.0.0.5".parse().ok(), "127.0.0.6".parse().ok());
    let first = limit.acquire_for(a).await.unwrap();
    let _second = limit.acquire_for(a).await.unwrap();
    assert!(matches!(
        limit.acquire_for(a).await,
        Err(CapacityError::PerAddress { cap: 2, .. })
    ));
    // Another address, and a caller without one, are not counted against it.
    let _other = limit.acquire_for(b).await.unwrap();
    let _unknown = limit.acquire_for(None).await.unwrap();
    drop(first);
    assert!(limit.acquire_for(a).await.is_ok());
    assert_eq!(limit.snapshot().per_address_rejected_total, 1);
    assert_eq!(limit.snapshot().rejected_total, 0);
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_bodies_and_memory() {
    let budget =
        ByteBudget::new(16 << 20, Duration::from_millis(50)).with_address_caps(AddressCaps {
            bodies: 2,
            bytes: 4 << 20,
        });
    let (a, b) = ("10.0.0.1".parse().ok(), "10.0.0.2".parse().ok());
    let place = budget.body_place(a).unwrap();
    let _place = budget.body_place(a).unwrap();
    assert!(matches!(
        budget.body_place(a),
        Err(CapacityError::PerAddress { name: "bodies", .. })
    ));
    drop(place);
    assert!(budget.body_place(a).is_ok());
    // An address's only reservation may be larger than its share; the next must fit in it.
    let big = budget.reserve_for(a, 6 << 20).await.unwrap();
    assert!(matches!(
        budget.reserve_for(a, 1 << 20).await,
        Err(CapacityError::PerAddress {
            name: "body_memory",
            ..
        })
    ));
    let _theirs = budget.reserve_for(b, 3 << 20).await.unwrap();
    assert_eq!(budget.reserved_by(a.unwrap()), 6 << 20);
    drop(big);
    assert_eq!(budget.reserved_by(a.unwrap()), 0);
    let small = budget.try_reserve_for(a, 1 << 20).unwrap();
    assert!(small.is_some());
    let snapshot = budget.snapshot();
    assert_eq!(snapshot.per_address_bodies_rejected_total, 1);
    assert_eq!(snapshot.per_address_memory_rejected_total, 1);
    assert_eq!(snapshot.reserved_bytes, 4 << 20);
}

#[tokio::test(start_paused = true)]
async fn a_budget_holds_bytes_until_they_are_given_back() {
    let budget = Arc::new(ByteBudget::new(4 << 20, Duration::from_millis(100)));
    let first = budget.reserve(3 << 20).await.unwrap();
    assert_eq!(budget.snapshot().reserved_bytes, 3 << 20);
    // 2 MiB more do not fit: the wait ends at max_wait.
    assert!(matches!(
        budget.reserve(2 << 20).await,
        Err(CapacityError::Timeout { .. })
    ));
    // They fit as soon as the first reservation is dropped while waiting.
    let waiter = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.reserve(2 << 20).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(budget.snapshot().waiting, 1);
    drop(first);
    assert!(waiter.await.unwrap().is_ok());
    // More than the whole budget takes all of it rather than never fitting.
    let all = budget.reserve(1 << 40).await.unwrap();
    assert_eq!(budget.snapshot().reserved_bytes, 4 << 20);
    drop(all);
    assert_eq!(budget.snapshot().reserved_bytes, 0);
    assert_eq!(budget.snapshot().rejected_total, 1);
}
