use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_burst_then_the_sustained_rate() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(10.0, 5);
    for i in 0..5 {
        assert!(bucket.take(t0), "burst token {i}");
    }
    assert!(!bucket.take(t0));
    // 10 per second: one token every 100 ms.
    assert!(!bucket.take(t0 + Duration::from_millis(50)));
    assert!(bucket.take(t0 + Duration::from_millis(100)));
    assert!(!bucket.take(t0 + Duration::from_millis(100)));
    assert!(bucket.take(t0 + Duration::from_millis(300)));
    assert!(bucket.take(t0 + Duration::from_millis(300)));
    assert!(!bucket.take(t0 + Duration::from_millis(300)));
}

#[test]
fn a_long_quiet_spell_refills_up_to_the_burst_only() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(10.0, 5);
    assert!(bucket.take(t0));
    assert_eq!(bucket.available(t0 + Duration::from_secs(3600)), 5);
}

#[test]
fn an_earlier_instant_adds_nothing() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(10);
    let mut bucket = TokenBucket::new(1.0, 1);
    assert!(bucket.take(later));
    assert!(!bucket.take(t0));
    assert!(!bucket.take(later));
    assert!(bucket.take(later + Duration::from_secs(1)));
}

#[test]
fn a_zero_rate_allows_the_burst_only() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(0.0, 2);
    assert!(bucket.take(t0));
    assert!(bucket.take(t0));
    assert!(!bucket.take(t0 + Duration::from_secs(3600)));
}
