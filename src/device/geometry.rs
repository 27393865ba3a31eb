//! The sizes of windowed ops (convolution, pooling) as plain numbers, for the kernels. The typed
//! front end computes them from the shapes; a 1-D op is the 2-D one with a height of 1.

/// The sizes of a 2-D convolution `y = x ⋆ w` with `x: [batch, in_channels, input]`,
/// `w: [out_channels, in_channels / groups, kernel]` and `y: [batch, out_channels, output]`.
///
/// A transposed convolution is described by the convolution it transposes (its input is that
/// convolution's output).
///
/// ```
/// use tensile::device::ConvGeometry;
/// let g = ConvGeometry::new(8, 3, 16, 1, [28, 28], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
/// assert_eq!(g.output, [28, 28]);
/// assert_eq!(g.patch_len(), 27);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of `x`.
    pub in_channels: usize,
    /// Channels of `y`.
    pub out_channels: usize,
    /// Channel groups (each output channel sees `in_channels / groups` input channels).
    pub groups: usize,
    /// Height and width of `x`.
    pub input: [usize; 2],
    /// Height and width of the kernel.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Zeros added on each side of `x`.
    pub padding: [usize; 2],
    /// Step between kernel taps.
    pub dilation: [usize; 2],
    /// Height and width of `y`.
    pub output: [usize; 2],
}

impl ConvGeometry {
    /// The geometry with its output size computed; `None` when the window does not fit or a
    /// channel count is not a multiple of `groups`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        groups: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return None;
        }
        let out = |i: usize| crate::shapes::window_out(input[i], kernel[i], stride[i], padding[i], dilation[i]);
        let output = [out(0)?, out(1)?];
        Some(Self { batch, in_channels, out_channels, groups, input, kernel, stride, padding, dilation, output })
    }
    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Elements of one window across a group's input channels (a row of the weight matrix).
    pub fn patch_len(&self) -> usize {
        self.in_per_group() * self.kernel[0] * self.kernel[1]
    }
    /// Pixels of one input plane.
    pub fn input_pixels(&self) -> usize {
        self.input[0] * self.input[1]
    }
    /// Pixels of one output plane.
    pub fn output_pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }
    /// Multiply-adds of the forward product.
    pub fn macs(&self) -> usize {
        self.batch * self.out_channels * self.output_pixels() * self.patch_len()
    }
    /// True when the convolution is a plain matrix product per image (1x1 kernel, stride 1, no
    /// padding): the input needs no unfolding.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// How a pooling op places its windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolWindows {
    /// Fixed windows: `kernel` taps `dilation` apart, every `stride`, over an input padded by
    /// `padding` on each side.
    Sliding {
        /// Taps per window, per axis.
        kernel: [usize; 2],
        /// Step between windows.
        stride: [usize; 2],
        /// Implicit padding on each side.
        padding: [usize; 2],
        /// Step between taps.
        dilation: [usize; 2],
    },
    /// PyTorch's adaptive windows: output cell `i` of `o` covers `[floor(i n / o), ceil((i + 1) n / o))`.
    Adaptive,
}

/// The sizes of a 2-D pooling op over `planes` independent planes (batch times channels).
///
/// ```
/// use tensile::device::{PoolGeometry, PoolWindows};
/// let w = PoolWindows::Sliding { kernel: [2, 2], stride: [2, 2], padding: [0, 0], dilation: [1, 1] };
/// let g = PoolGeometry { planes: 3, input: [4, 4], output: [2, 2], windows: w };
/// assert_eq!(g.window(1, 1), (2, 2, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Independent planes (batch times channels).
    pub planes: usize,
    /// Height and width of the input.
    pub input: [usize; 2],
    /// Height and width of the output.
    pub output: [usize; 2],
    /// How windows are placed.
    pub windows: PoolWindows,
}

impl PoolGeometry {
    /// The window of output index `o` along `axis`: `(first tap, taps, step)`, the first tap
    /// possibly negative (in the padding).
    pub fn window(&self, axis: usize, o: usize) -> (isize, usize, usize) {
        match self.windows {
            PoolWindows::Sliding { kernel, stride, padding, dilation } => {
                ((o * stride[axis]) as isize - padding[axis] as isize, kernel[axis], dilation[axis])
            }
            PoolWindows::Adaptive => {
                let (n, out) = (self.input[axis], self.output[axis]);
                let start = o * n / out;
                let end = ((o + 1) * n).div_ceil(out);
                (start as isize, end - start, 1)
            }
        }
    }
}

/// The sizes of fused scaled dot-product attention over `heads` independent heads (batch and
/// heads together): queries `[heads, queries, depth]`, keys `[heads, keys, depth]`, values
/// `[heads, keys, value_depth]` and output `[heads, queries, value_depth]`.
///
/// ```
/// use tensile::device::AttnGeometry;
/// let g = AttnGeometry { heads: 8 * 4, queries: 128, keys: 128, depth: 64, value_depth: 64, scale: 0.125, causal: true };
/// assert_eq!(g.visible_keys(0..16), 16); // a causal block of queries 0..16 sees keys 0..16
/// assert_eq!(g.macs(), 32 * 128 * 128 * 128);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnGeometry {
    /// Batch times heads.
    pub heads: usize,
    /// Queries per head (`L`).
    pub queries: usize,
    /// Keys and values per head (`S`).
    pub keys: usize,
    /// Length of a query or key vector.
    pub depth: usize,
    /// Length of a value vector.
    pub value_depth: usize,
    /// What the scores `q kᵀ` are multiplied by (`1/√depth`).
    pub scale: f64,
    /// Query `i` sees keys `0..=i` only (PyTorch's `is_causal`).
    pub causal: bool,
}

impl AttnGeometry {
    /// How many leading keys the block of `queries` can see: all of them, or with a causal mask
    /// up to its last query.
    pub fn visible_keys(&self, queries: core::ops::Range<usize>) -> usize {
        if self.causal { self.keys.min(queries.end) } else { self.keys }
    }

    /// Multiply-adds of the two products (`q kᵀ` and the weights times `v`).
    pub fn macs(&self) -> usize {
        self.heads * self.queries * self.keys * (self.depth + self.value_depth)
    }
}
