//! Saving and loading an optimiser's state (moments, step counts, master weights) as
//! safetensors, keyed by the parameters' `state_dict` names, so a run resumes exactly where it
//! stopped.

use super::{Algorithm, Optimizer, ParamState, Slots};
use crate::compat::prelude::*;
use crate::compat::{HashMap, HashSet};
use crate::device::Device;
use crate::device::Layout;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::nn::serialize::{Entry, from_le_bytes, le_bytes, malformed, serialize_entries, st_dtype};
use crate::nn::{Params, TensorKind, Visitor};
use crate::shapes::Shape;
use crate::tensor::Tensor;
use safetensors::SafeTensors;
#[cfg(feature = "std")]
use std::path::Path;

/// The learning rate's key.
const LR_KEY: &str = "__lr__";

fn bad(reason: String) -> Error {
    Error::Malformed { format: "optimizer state", reason }
}

impl<A: Algorithm, D: Device> Optimizer<A, D> {
    /// The state as safetensors bytes: for each parameter of `model` with state,
    /// `"<name>.step"` (int64), `"<name>.<slot>"` for each of the algorithm's slots
    /// (`exp_avg`, ..) and `"<name>.master"` with master weights; the learning rate as the f64
    /// scalar `"__lr__"`, and the algorithm's name as the one metadata entry (one, so that the
    /// same state always gives the same bytes).
    pub fn state_to_safetensors<M: Params<D>>(&self, model: &M) -> Result<Vec<u8>> {
        let f64_code = st_dtype::<f64>().expect("float64");
        let mut collect =
            Collect { opt: self, entries: vec![(LR_KEY.into(), f64_code, vec![], le_bytes(&[self.lr()]))] };
        model.visit_params("", &mut collect);
        serialize_entries(&collect.entries, Some(("optimizer", A::NAME)))
    }

    /// Writes the state to `path` (a temporary file renamed over it).
    #[cfg(feature = "std")]
    pub fn save<M: Params<D>, P: AsRef<Path>>(&self, model: &M, path: P) -> Result<()> {
        crate::io::write_atomically(path.as_ref(), &self.state_to_safetensors(model)?)
    }

    /// Replaces the state with one saved for `model` (and restores the learning rate). `Err`,
    /// and nothing changed, when the file is malformed, was saved by another algorithm, names a
    /// tensor the model lacks, or has a slot of the wrong shape or dtype.
    pub fn load_state_safetensors<M: Params<D>>(&mut self, model: &M, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| malformed(&e))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| malformed(&e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let saved_by = meta.get("optimizer").map(String::as_str).unwrap_or("?");
        if saved_by != A::NAME {
            return Err(bad(format!("saved by {saved_by}, this optimizer is {}", A::NAME)));
        }
        let lr = match file.tensor(LR_KEY) {
            Ok(v) if v.dtype() == safetensors::Dtype::F64 && v.shape().is_empty() => from_le_bytes::<f64>(v.data())[0],
            _ => return Err(bad(format!("no f64 scalar `{LR_KEY}` (the learning rate)"))),
        };
        let mut read = Read {
            file: &file,
            slot_names: A::SLOT_NAMES,
            state: HashMap::new(),
            used: HashSet::new(),
            error: None,
            _device: Default::default(),
        };
        model.visit_params("", &mut read);
        if let Some(e) = read.error {
            return Err(e);
        }
        read.used.insert(LR_KEY.to_string());
        let mut unexpected: Vec<&str> = file.names().into_iter().filter(|n| !read.used.contains(*n)).collect();
        unexpected.sort_unstable();
        if let Some(key) = unexpected.first() {
            return Err(Error::UnexpectedKey { key: key.to_string() });
        }
        self.state = read.state;
        self.set_lr(lr);
        Ok(())
    }

    /// Loads the state from a file written by [`Optimizer::save`]; see
    /// [`Optimizer::load_state_safetensors`].
    #[cfg(feature = "std")]
    pub fn load<M: Params<D>, P: AsRef<Path>>(&mut self, model: &M, path: P) -> Result<()> {
        self.load_state_safetensors(model, &crate::io::read(path.as_ref())?)
    }
}

struct Collect<'a, A: Algorithm, D: Device> {
    opt: &'a Optimizer<A, D>,
    entries: Vec<Entry>,
}

impl<A: Algorithm, D: Device> Visitor<D> for Collect<'_, A, D> {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, D>) {
        let Some(state) = self.opt.state.get(name) else { return };
        let Some(slots) = state.slots.downcast_ref::<Slots<D, E::Acc>>() else { return };
        let acc = st_dtype::<E::Acc>().expect("float dtypes have safetensors codes");
        let dims = state.dims.clone();
        let layout = Layout::contiguous(t.dims());
        let step = st_dtype::<i64>().expect("int64");
        self.entries.push((format!("{name}.step"), step, vec![], le_bytes(&[state.step as i64])));
        for (slot, values) in A::SLOT_NAMES.iter().zip(&slots.values) {
            let bytes = le_bytes(&t.device().download(values, &layout));
            self.entries.push((format!("{name}.{slot}"), acc, dims.clone(), bytes));
        }
        if let Some(master) = &slots.master {
            let bytes = le_bytes(&t.device().download(master, &layout));
            self.entries.push((format!("{name}.master"), acc, dims, bytes));
        }
    }
}

struct Read<'a, 'data, D: Device> {
    file: &'a SafeTensors<'data>,
    slot_names: &'static [&'static str],
    state: HashMap<String, ParamState>,
    used: HashSet<String>,
    error: Option<Error>,
    _device: core::marker::PhantomData<fn() -> D>,
}

impl<D: Device> Read<'_, '_, D> {
    /// One slot of `name` as `A` values, checked against the parameter's dims.
    fn slot<A: Float>(&mut self, key: String, dims: &[usize], dev: &D) -> Result<D::Storage<A>> {
        let view = self.file.tensor(&key).map_err(|_| Error::MissingKey { key: key.clone() })?;
        if st_dtype::<A>() != Some(view.dtype()) {
            return Err(Error::WrongDtype { key, expected: A::NAME, found: view.dtype().to_string() });
        }
        if view.shape() != dims {
            return Err(Error::WrongShape { key, expected: dims.to_vec(), found: view.shape().to_vec() });
        }
        self.used.insert(key);
        Ok(dev.upload(from_le_bytes::<A>(view.data())))
    }

    fn param<E: Float, S: Shape>(&mut self, name: &str, t: &Tensor<S, E, D>) -> Result<()> {
        let step_key = format!("{name}.step");
        let Ok(step) = self.file.tensor(&step_key) else { return Ok(()) }; // no state yet
        if step.dtype() != safetensors::Dtype::I64 || !step.shape().is_empty() {
            return Err(bad(format!("`{step_key}` is not an int64 scalar")));
        }
        let step = from_le_bytes::<i64>(step.data())[0];
        self.used.insert(step_key);
        let dims = t.dims().to_vec();
        let dev = t.device();
        let values = self
            .slot_names
            .iter()
            .map(|slot| self.slot::<E::Acc>(format!("{name}.{slot}"), &dims, dev))
            .collect::<Result<Vec<_>>>()?;
        let master_key = format!("{name}.master");
        let master = match self.file.tensor(&master_key) {
            Ok(_) => Some(self.slot::<E::Acc>(master_key, &dims, dev)?),
            Err(_) => None,
        };
        let slots = Slots::<D, E::Acc> { values, master };
        self.state.insert(name.to_string(), ParamState { step: step.max(0) as u64, dims, slots: Box::new(slots) });
        Ok(())
    }
}

impl<D: Device> Visitor<D> for Read<'_, '_, D> {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
        if self.error.is_none()
            && kind != TensorKind::Buffer
            && let Err(e) = self.param(name, t)
        {
            self.error = Some(e);
        }
    }
}
