//! A `bounded(1)` hand-off between two tasks on one thread (`futures`' `LocalPool`), for
//! counting instructions with `valgrind --tool=callgrind`: the C4 workload of
//! `benches/channel.rs` without a runtime's threads, so the count is the channel's own
//! cost, repeatable to the instruction.
//!
//! ```sh
//! cargo build --release --example handoff
//! valgrind --tool=callgrind target/release/examples/handoff 300000 toro   # or kanal
//! ```
//!
//! It prints how often each task was polled and returned `Pending` per message: each side
//! of a `bounded(1)` that hands items to a waiting receiver waits once every three messages.
//!
//! With a third argument, `nowait`, one task sends 500 items into a `bounded(1024)` and
//! then receives them, until `n` messages are through: the same sends and receives with no
//! wait, so the difference between the two counts is what the waits cost.
//!
//! ```sh
//! valgrind --tool=callgrind target/release/examples/handoff 300000 toro nowait
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

/// Counts the polls of `fut` that returned `Pending` into `pends`.
async fn counted<F: Future>(fut: F, pends: Rc<Cell<u64>>) -> F::Output {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Pending => {
            pends.set(pends.get() + 1);
            Poll::Pending
        }
        ready => ready,
    })
    .await
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(300_000, |a| a.parse().expect("a message count"));
    let peer = args.next().unwrap_or_else(|| "toro".into());
    if args.next().as_deref() == Some("nowait") {
        return no_wait(n, &peer);
    }
    let (rx_pends, tx_pends) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let expected = n * (n - 1) / 2;
    match peer.as_str() {
        "toro" => {
            let (tx, rx) = toro_sync::channel::bounded::<u64>(1);
            let recv = async move {
                let mut sum = 0u64;
                for _ in 0..n {
                    sum += rx.recv().await.expect("open");
                }
                assert_eq!(sum, expected, "items lost or doubled");
            };
            let send = async move {
                for i in 0..n {
                    tx.send(i).await.expect("open");
                }
            };
            spawner
                .spawn_local(counted(recv, rx_pends.clone()))
                .unwrap();
            spawner
                .spawn_local(counted(send, tx_pends.clone()))
                .unwrap();
        }
        "kanal" => {
            let (tx, rx) = kanal::bounded_async::<u64>(1);
            let recv = async move {
                let mut sum = 0u64;
                for _ in 0..n {
                    sum += rx.recv().await.expect("open");
                }
                assert_eq!(sum, expected, "items lost or doubled");
            };
            let send = async move {
                for i in 0..n {
                    tx.send(i).await.expect("open");
                }
            };
            spawner
                .spawn_local(counted(recv, rx_pends.clone()))
                .unwrap();
            spawner
                .spawn_local(counted(send, tx_pends.clone()))
                .unwrap();
        }
        other => panic!("unknown peer {other:?}: toro or kanal"),
    }
    pool.run();
    println!(
        "{peer}: {n} messages; Pending per message: receiver {:.3}, sender {:.3}",
        rx_pends.get() as f64 / n as f64,
        tx_pends.get() as f64 / n as f64
    );
}

/// Batches of 500 sends into a `bounded(1024)`, each followed by its 500 receives, on one
/// task: no operation waits.
fn no_wait(n: u64, peer: &str) {
    const BATCH: u64 = 500;
    let sum = futures::executor::block_on(async {
        let mut sum = 0u64;
        match peer {
            "toro" => {
                let (tx, rx) = toro_sync::channel::bounded::<u64>(1024);
                for batch in 0..n / BATCH {
                    for i in 0..BATCH {
                        tx.send(batch * BATCH + i).await.expect("open");
                    }
                    for _ in 0..BATCH {
                        sum += rx.recv().await.expect("open");
                    }
                }
            }
            "kanal" => {
                let (tx, rx) = kanal::bounded_async::<u64>(1024);
                for batch in 0..n / BATCH {
                    for i in 0..BATCH {
                        tx.send(batch * BATCH + i).await.expect("open");
                    }
                    for _ in 0..BATCH {
                        sum += rx.recv().await.expect("open");
                    }
                }
            }
            other => panic!("unknown peer {other:?}: toro or kanal"),
        }
        sum
    });
    let m = n / BATCH * BATCH;
    assert_eq!(sum, m * (m - 1) / 2, "items lost or doubled");
    println!("{peer}: {m} messages, none waited");
}
