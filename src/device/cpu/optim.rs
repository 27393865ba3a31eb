//! The fused optimiser step: one pass over a parameter, its gradient and its state, in
//! parallel chunks above the parallel threshold.

use super::strided::PAR_THRESHOLD;
use crate::compat::prelude::*;
use crate::dtypes::Float;
use crate::optim::UpdateRule;
use crate::par::*;
use num_traits::Zero;

/// Elements per parallel task (a few hundred KiB of streams each).
const CHUNK: usize = 1 << 14;

/// At most this many state slots (Adam with AMSGrad, centered RMSprop with momentum).
const MAX_SLOTS: usize = 4;

/// Applies `rule` to every element: `param[i]` (or `master[i]`, rounded into `param[i]`) from
/// `grad[i]` and `state[k][i]`.
pub(crate) fn fused_update<E: Float, R: UpdateRule>(
    rule: &R,
    param: &mut [E],
    grad: &[E],
    state: &mut [&mut [E::Acc]],
    master: Option<&mut [E::Acc]>,
) {
    assert!(rule.slots() <= MAX_SLOTS && state.len() == rule.slots(), "one state buffer per slot");
    assert!(grad.len() == param.len() && state.iter().all(|s| s.len() == param.len()), "buffers of one size");
    let mut slot_chunks: Vec<_> = state.iter_mut().map(|s| s.chunks_mut(CHUNK)).collect();
    let mut master_chunks = master.map(|m| m.chunks_mut(CHUNK));
    let tasks: Vec<_> = param
        .chunks_mut(CHUNK)
        .zip(grad.chunks(CHUNK))
        .map(|(p, g)| {
            let slots: Vec<&mut [E::Acc]> = slot_chunks.iter_mut().map(|c| c.next().expect("same length")).collect();
            (p, g, slots, master_chunks.as_mut().map(|c| c.next().expect("same length")))
        })
        .collect();
    // the slot count as a constant, so that the per-element loops over slots unroll
    let run =
        |(p, g, mut slots, master): (&mut [E], &[E], Vec<&mut [E::Acc]>, Option<&mut [E::Acc]>)| match rule.slots() {
            0 => update_chunk::<E, R, 0>(rule, p, g, &mut slots, master),
            1 => update_chunk::<E, R, 1>(rule, p, g, &mut slots, master),
            2 => update_chunk::<E, R, 2>(rule, p, g, &mut slots, master),
            3 => update_chunk::<E, R, 3>(rule, p, g, &mut slots, master),
            _ => update_chunk::<E, R, MAX_SLOTS>(rule, p, g, &mut slots, master),
        };
    if param_len(&tasks) >= PAR_THRESHOLD && tasks.len() > 1 {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

fn param_len<T>(tasks: &[(&mut [T], &[T], Vec<&mut [impl Sized]>, Option<&mut [impl Sized]>)]) -> usize {
    tasks.iter().map(|t| t.0.len()).sum()
}

#[inline(always)]
fn update_chunk<E: Float, R: UpdateRule, const K: usize>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    slots: &mut [&mut [E::Acc]],
    mut master: Option<&mut [E::Acc]>,
) {
    let mut s = [E::Acc::zero(); K];
    for i in 0..p.len() {
        for k in 0..K {
            s[k] = slots[k][i];
        }
        let old = match &master {
            Some(m) => m[i],
            None => p[i].to_acc(),
        };
        let new = rule.update(old, g[i].to_acc(), &mut s);
        for k in 0..K {
            slots[k][i] = s[k];
        }
        if let Some(m) = master.as_mut() {
            m[i] = new;
        }
        p[i] = E::from_acc(new);
    }
}
