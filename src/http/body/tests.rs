//! The body limits and the memory budget, on streamed bodies.

use super::*;
use http_body_util::BodyExt;

/// Tests fail with the error instead of unwrapping on the path they exercise.
type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn chunks(count: usize, size: usize) -> Body {
    let chunk = Bytes::from(vec![0u8; size]);
    Body::from_stream(futures_util::stream::iter(
        (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}

fn metered(meter: &Arc<Meter>, limit: usize) -> BodySize {
    BodySize {
        declared: None,
        limit,
        client: "127.0.0.9".parse().ok(),
        meter: Some(meter.clone()),
    }
}

#[tokio::test]
async fn a_body_of_undeclared_size_reserves_as_it_arrives() -> TestResult {
    let budget = Arc::new(ByteBudget::new(8 << 20, Duration::from_millis(50)));
    let meter = Arc::new(Meter::default());
    let memory = metered(&meter, 80 << 20).reserve(&budget).await?;
    // Nothing is reserved before the body arrives, not the route's 80 MiB.
    assert_eq!(budget.snapshot().reserved_bytes, 0);
    let mut body = MeteredBody::new(chunks(30, 100_000), meter);
    body.frame().await.ok_or("the body ended early")??;
    assert_eq!(budget.snapshot().reserved_bytes, METER_STEP);
    while let Some(frame) = body.frame().await {
        frame?;
    }
    let reserved = budget.snapshot().reserved_bytes;
    assert!(
        (3_000_000..3_000_000 + METER_STEP).contains(&reserved),
        "{reserved}"
    );
    // Held until the handler is done, not when the body ends.
    drop(body);
    assert_eq!(budget.snapshot().reserved_bytes, reserved);
    drop(memory);
    assert_eq!(budget.snapshot().reserved_bytes, 0);
    Ok(())
}

#[tokio::test]
async fn a_declared_body_reserves_its_first_step_then_the_rest_once_it_arrived() -> TestResult {
    let budget = Arc::new(ByteBudget::new(8 << 20, Duration::from_millis(50)));
    let meter = Arc::new(Meter::default());
    let size = BodySize {
        declared: Some(3_000_000),
        ..metered(&meter, 80 << 20)
    };
    let _memory = size.reserve(&budget).await?;
    // A trickler that sent nothing holds one step, however large it says it is.
    assert_eq!(budget.snapshot().reserved_bytes, METER_STEP);
    let mut body = MeteredBody::new(chunks(30, 100_000), meter);
    for _ in 0..2 {
        body.frame().await.ok_or("the body ended early")??;
        assert_eq!(budget.snapshot().reserved_bytes, METER_STEP);
    }
    body.frame().await.ok_or("the body ended early")??;
    let whole = 3_000_000_u64.div_ceil(1024) * 1024;
    assert!(
        (whole..whole + 1024).contains(&budget.snapshot().reserved_bytes),
        "{}",
        budget.snapshot().reserved_bytes
    );
    while let Some(frame) = body.frame().await {
        frame?;
    }
    assert!(budget.snapshot().reserved_bytes < whole + 2048);
    Ok(())
}

#[tokio::test]
async fn a_body_that_outgrows_the_budget_is_refused_as_it_arrives() -> TestResult {
    let budget = Arc::new(ByteBudget::new(2 << 20, Duration::from_millis(50)));
    let meter = Arc::new(Meter::default());
    let _memory = metered(&meter, 80 << 20).reserve(&budget).await?;
    let mut body = MeteredBody::new(chunks(30, 100_000), meter);
    let mut read = 0;
    let refused = loop {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(e)) => break e,
            None => panic!("read the whole body ({read} bytes) past a 2 MiB budget"),
        }
    };
    assert!(read <= 2 << 20, "{read}");
    assert!(BodyRefused::find(refused.as_ref()).is_some(), "{refused}");
    assert!(body.frame().await.is_none());
    Ok(())
}
