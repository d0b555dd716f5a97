//! Sample streams in one process: late consumers catch up, every sample is counted once, the
//! caps and their policies drop what they say and count it, bad batches are rejected and
//! counted, a dead producer does not stall anyone, and the online trainer fits a function.

use std::time::Duration;

use amlip_core::cancel::CancelToken;
use amlip_core::nn::Spec;
use amlip_core::prelude::*;
use amlip_core::stream::{
    Consumer, ConsumerOptions, Function, OnlineTraining, Policy, Producer, ProducerOptions,
    Samples, StreamError,
};
use amlip_testkit::wait_until;

const WAIT: Duration = Duration::from_secs(60);

fn cfg(domain: &amlip_testkit::Domain, name: &str) -> NodeConfig {
    NodeConfig::new(name).domain(domain.id()).localhost()
}

fn batch(iteration: u64, rank: u32, n: usize) -> Samples {
    Function::Sin.sample(n, iteration * 100 + rank as u64)
}

#[test]
fn a_late_consumer_catches_up_and_counts_every_sample_once() {
    let d = amlip_testkit::domain();
    let producers: Vec<Producer> = (0..2)
        .map(|r| Producer::start(&cfg(&d, "Sim"), "late", r, ProducerOptions::default()).unwrap())
        .collect();
    for it in 0..10 {
        for (r, p) in producers.iter().enumerate() {
            p.publish(it, &batch(it, r as u32, 8)).unwrap();
        }
    }
    let consumer =
        Consumer::follow(&cfg(&d, "Trainer"), "late", ConsumerOptions::default()).unwrap();
    assert_eq!(consumer.wait_for_producers(2, WAIT, &CancelToken::new()), 2);
    for it in 10..20 {
        for (r, p) in producers.iter().enumerate() {
            p.publish(it, &batch(it, r as u32, 8)).unwrap();
        }
    }
    let finishing: Vec<_> = producers
        .into_iter()
        .map(|p| std::thread::spawn(move || p.finish(1, WAIT, &CancelToken::new())))
        .collect();
    assert!(
        wait_until(WAIT, || consumer.settled()),
        "{:?}",
        consumer.counts()
    );
    for f in finishing {
        let done = f.join().unwrap();
        assert_eq!((done.produced, done.drained), (160, 1));
    }
    let counts = consumer.counts();
    assert_eq!(counts.len(), 2);
    for c in &counts {
        assert_eq!(c.state, "ended");
        assert_eq!((c.produced, c.received, c.kept), (160, 160, 160), "{c:?}");
        assert_eq!((c.duplicates, c.dropped(), c.rejected()), (0, 0, 0));
    }
    // The samples are the ones produced (each rank's are its own draws).
    let (held, _) = consumer.samples().unwrap();
    assert_eq!(held.len(), 320);
    let mut got = held.inputs.clone();
    got.sort_by(f32::total_cmp);
    let mut want: Vec<f32> = (0..20)
        .flat_map(|it| (0..2).flat_map(move |r| batch(it, r, 8).inputs))
        .collect();
    want.sort_by(f32::total_cmp);
    assert_eq!(got, want);
}

#[test]
fn caps_drop_what_their_policy_says_and_count_it() {
    let d = amlip_testkit::domain();
    // The producer retains only ~3 batches: a consumer that comes after 10 misses 7 of them.
    let opts = ProducerOptions {
        retain_bytes: 3 * (5 + 28 + 16 * 8),
        ..Default::default()
    };
    let producer = Producer::start(&cfg(&d, "Sim"), "capped", 0, opts).unwrap();
    for it in 0..10 {
        producer.publish(it, &batch(it, 0, 16)).unwrap();
    }
    for policy in [Policy::Window, Policy::Reservoir] {
        let consumer = Consumer::follow(
            &cfg(&d, "Trainer"),
            "capped",
            ConsumerOptions {
                keep: 20,
                policy,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(wait_until(WAIT, || consumer
            .counts()
            .first()
            .is_some_and(|c| c.received + c.dropped_by_producer == 160)));
        let c = &consumer.counts()[0];
        assert_eq!(c.dropped_by_producer, 7 * 16, "{c:?}");
        assert_eq!(c.kept, 20);
        assert_eq!(c.dropped_by_cap, 3 * 16 - 20);
        assert_eq!(c.dropped(), c.produced - c.kept);
        assert!(c.problems[0].contains("no longer retained"), "{c:?}");
    }
}

#[test]
fn bad_batches_are_counted_and_reported_and_the_rest_is_kept() {
    let d = amlip_testkit::domain();
    let producer = Producer::start(&cfg(&d, "Sim"), "bad", 3, ProducerOptions::default()).unwrap();
    let consumer = Consumer::follow(
        &cfg(&d, "Trainer"),
        "bad",
        ConsumerOptions {
            shape: Some((1, 1)),
            ..Default::default()
        },
    )
    .unwrap();
    producer.publish(0, &batch(0, 3, 10)).unwrap();
    let wide = Samples::new(vec![0.5; 30], 3, vec![0.1; 10], 1).unwrap();
    producer.publish(1, &wide).unwrap();
    let mut nan = batch(2, 3, 10);
    nan.inputs[4] = f32::NAN;
    nan.targets[7] = f32::INFINITY;
    producer.publish(2, &nan).unwrap();
    let done = std::thread::spawn(move || producer.finish(1, WAIT, &CancelToken::new()));
    assert!(wait_until(WAIT, || consumer.settled()));
    assert_eq!(done.join().unwrap().produced, 30);
    let c = &consumer.counts()[0];
    assert_eq!((c.received, c.kept), (30, 18), "{c:?}");
    assert_eq!((c.rejected_shape, c.rejected_values), (10, 2));
    assert!(c
        .problems
        .iter()
        .any(|p| p.contains("iteration 1: 10 sample(s) of 3 input")));
    assert!(c
        .problems
        .iter()
        .any(|p| p.contains("iteration 2: 2 sample(s) with a NaN")));
    // An inconsistent batch is refused at the producer, naming the sizes.
    let e = Samples::new(vec![0.0; 5], 2, vec![0.0; 2], 1).unwrap_err();
    assert!(e.to_string().contains("5 input values in rows of 2"), "{e}");
}

#[test]
fn a_producer_that_dies_is_given_up_without_stalling_the_consumer() {
    let d = amlip_testkit::domain();
    let alive = Producer::start(&cfg(&d, "Sim"), "dies", 0, ProducerOptions::default()).unwrap();
    let dying = Producer::start(&cfg(&d, "Sim"), "dies", 1, ProducerOptions::default()).unwrap();
    let consumer = Consumer::follow(
        &cfg(&d, "Trainer"),
        "dies",
        ConsumerOptions {
            silence: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(consumer.wait_for_producers(2, WAIT, &CancelToken::new()), 2);
    alive.publish(0, &batch(0, 0, 8)).unwrap();
    dying.publish(0, &batch(0, 1, 8)).unwrap();
    assert!(wait_until(WAIT, || consumer.held() == 16));
    drop(dying); // gone without an end, as a killed simulation
    alive.publish(1, &batch(1, 0, 8)).unwrap();
    assert!(wait_until(WAIT, || consumer.held() == 24));
    let done = std::thread::spawn(move || alive.finish(1, WAIT, &CancelToken::new()));
    assert!(
        wait_until(WAIT, || consumer.settled()),
        "{:?}",
        consumer.counts()
    );
    done.join().unwrap();
    let counts = consumer.counts();
    assert_eq!(counts[0].state, "ended");
    assert!(counts[1].state.starts_with("lost: "), "{:?}", counts[1]);
    assert_eq!(counts[1].received, 8);
}

#[test]
fn the_online_trainer_fits_sin_from_two_live_producers() {
    let d = amlip_testkit::domain();
    let producers: Vec<_> = (0..2u32)
        .map(|rank| {
            let c = cfg(&d, "Sim");
            std::thread::spawn(move || {
                let p = Producer::start(&c, "online", rank, ProducerOptions::default()).unwrap();
                for it in 0..20 {
                    p.publish(it, &batch(it, rank, 16)).unwrap();
                }
                p.finish(1, WAIT, &CancelToken::new())
            })
        })
        .collect();
    let consumer = Consumer::follow(
        &cfg(&d, "Trainer"),
        "online",
        ConsumerOptions {
            shape: Some((1, 1)),
            ..Default::default()
        },
    )
    .unwrap();
    let mut training = OnlineTraining::new(Spec::regression(1, &[32, 32], 1));
    training.producers = 2;
    training.settle_epochs = 60;
    training.validation = Some(Function::Sin.grid(201));
    let mut seen = 0;
    let report = training
        .run(&consumer, &CancelToken::new(), &mut |_| seen += 1)
        .unwrap();
    for p in producers {
        assert_eq!(p.join().unwrap().produced, 320);
    }
    assert_eq!(seen, report.epochs.len());
    let last = report.epochs.last().unwrap();
    assert_eq!(last.held, 640);
    let received: u64 = report.producers.iter().map(|p| p.received).sum();
    assert_eq!(received, 640);
    let mse = last.validation.unwrap();
    assert!(mse < 0.01, "validation MSE {mse}");
    assert!(
        report.ended.contains("every stream ended"),
        "{}",
        report.ended
    );
}

#[test]
fn a_trainer_without_producers_says_so_at_its_timeout() {
    let d = amlip_testkit::domain();
    let consumer =
        Consumer::follow(&cfg(&d, "Trainer"), "nobody", ConsumerOptions::default()).unwrap();
    let mut training = OnlineTraining::new(Spec::regression(1, &[8], 1));
    training.wait = Duration::from_millis(500);
    let e = training
        .run(&consumer, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, StreamError::NoProducers { .. }), "{e}");
    assert!(
        e.to_string().contains("no producer of stream \"nobody\""),
        "{e}"
    );
}
