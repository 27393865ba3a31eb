//! The digits CNN on a Cortex-M4F, without `std`: the graph file `examples/export.rs` writes is
//! embedded with `include_bytes!`, loaded by tensile's runtime (built with
//! `default-features = false`), and run on test digits embedded the same way.
//!
//! ```sh
//! cd examples/embedded
//! cargo build --release   # thumbv7em-none-eabihf, from .cargo/config.toml
//! cargo run --release     # on QEMU's MPS2-AN386 board (apt install qemu-system-arm)
//! ```
//!
//! To refresh the embedded files after a format change or retraining:
//! `cargo run --release --example export -- --embedded examples/embedded/model` at the top.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::mem::MaybeUninit;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use embedded_alloc::LlffHeap as Heap;
use panic_semihosting as _;
use tensile::export::{Graph, Runtime, Value};

/// The exported, optimised digits CNN: its graph and its weights.
static GRAPH: &[u8] = include_bytes!("../model/digits_cnn.tgraph");
/// Test digits: 64 pixels (0..=16) per digit, then one label byte per digit.
static DIGITS: &[u8] = include_bytes!("../model/digits_test.bin");

const PIXELS: usize = 64;
/// The parsed graph and the runtime each hold a copy of the weights (about 210 KB), and loading
/// grows buffers as it goes; activations are small. The board has 4 MiB of data SRAM.
const HEAP_BYTES: usize = 3 << 20;

#[global_allocator]
static HEAP: Heap = Heap::empty();

#[entry]
fn main() -> ! {
    static mut HEAP_MEMORY: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
    // SAFETY: runs once, before the first allocation; cortex-m-rt's `#[entry]` turns
    // `HEAP_MEMORY` into a `&'static mut` that nothing else can reach, and it is handed to the
    // allocator for good.
    unsafe { HEAP.init(HEAP_MEMORY.as_mut_ptr() as usize, HEAP_BYTES) }

    match classify_all() {
        Ok((right, total)) => {
            hprintln!("{}/{} test digits classified correctly", right, total);
            // The trained CNN gets about 97 % of the test set right.
            debug::exit(if right * 10 >= total * 9 { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
        }
        Err(e) => {
            hprintln!("error: {}", e);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {}
}

/// Loads the graph, classifies every embedded digit, and counts the right answers.
fn classify_all() -> tensile::Result<(usize, usize)> {
    let graph = Graph::from_bytes(GRAPH)?;
    hprintln!("graph: {} nodes, {} constants, {} bytes", graph.nodes.len(), graph.constants.len(), GRAPH.len());
    let runtime = Runtime::new(&graph)?;
    let count = DIGITS.len() / (PIXELS + 1);
    let (images, labels) = DIGITS.split_at(count * PIXELS);
    let mut right = 0;
    for (i, (pixels, &label)) in images.chunks_exact(PIXELS).zip(labels).enumerate() {
        let x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 16.0).collect();
        let logits = runtime.run(&[Value::from_vec(&[1, 1, 8, 8], x)?])?[0].to_vec::<f32>()?;
        let predicted = (0..logits.len()).fold(0, |best, k| if logits[k] > logits[best] { k } else { best });
        hprintln!("digit {:2}: predicted {}, label {}", i, predicted, label);
        right += usize::from(predicted == usize::from(label));
    }
    Ok((right, count))
}
