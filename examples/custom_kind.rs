//! A job kind of your own, served by a computing node and sent by a main.
//!
//! Run: `cargo run --release -p amlip-examples --example custom_kind -- --domain 7`
//! (it starts its own computing node; nothing else needs to run).
use std::time::Duration;

use amlip_core::prelude::*;

/// Counts the words of a text.
struct WordCount;

impl JobKind for WordCount {
    const NAME: &'static str = "word_count";
    type Input = Json<String>;
    type Output = Json<usize>;

    fn run(&self, text: Json<String>, _ctx: &JobContext) -> Result<Json<usize>, BoxError> {
        Ok(Json(text.0.split_whitespace().count()))
    }
}

fn main() -> Result<(), Error> {
    let cfg = |name: &str| {
        NodeConfig::new(name)
            .domain(amlip_examples::domain())
            .localhost()
    };
    let mut computing = AsyncComputingNode::with_config(cfg("Counter"))?;
    computing.run(Registry::new().with(WordCount))?;

    let main = MainNode::with_config(cfg("Main"))?;
    let text = "the quick brown fox jumps over the lazy dog";
    let Json(words) = main.request::<WordCount>(&Json(text.into()), Duration::from_secs(30))?;
    println!("{words} words in {text:?}");
    assert_eq!(words, 9);
    Ok(())
}
