/**
 * Layer plans: a network as data, one entry per tfjs-layers layer, in model
 * order. Model definitions (dcgan.ts, mlp.ts) describe G and D this way;
 * build.ts turns a plan into a tfjs-layers Sequential, and this module works
 * out, without tfjs, each layer's output shape and the number of floats its
 * variables hold. The coordinator and checkpoints size their flat vectors
 * from these counts; the trainer checks them against the built variables.
 *
 * Shapes are per sample (no batch axis), channels last. Variable counts
 * follow tfjs-layers:
 *   dense            kernel [in, units] (+ bias [units]), `in` = last input axis
 *   conv2d           kernel [k, k, in, filters] (+ bias [filters])
 *   conv2dTranspose  kernel [k, k, filters, in] (+ bias [filters])
 *   batchNorm        γ, β trainable; moving mean, variance state; each [last axis]
 *   leakyReLU, reshape, flatten: none
 * A new layer type is one more case here and in build.ts.
 */

/** Activations the unfused forward pass (forward.ts) also knows. */
export type Activation = 'linear' | 'tanh' | 'relu' | 'sigmoid';

export type LayerPlan =
  | { type: 'dense'; name: string; units: number; useBias: boolean; activation: Activation }
  | {
      type: 'conv2d' | 'conv2dTranspose';
      name: string;
      filters: number;
      /** Side of the square kernel, pixels. */
      kernelSize: number;
      /** Stride along both axes, pixels. */
      strides: number;
      padding: 'same' | 'valid';
      useBias: boolean;
      activation: Activation;
    }
  | { type: 'batchNorm'; name: string; momentum: number; epsilon: number }
  | { type: 'leakyReLU'; name: string; alpha: number }
  | { type: 'reshape'; name: string; targetShape: number[] }
  | { type: 'flatten'; name: string };

export interface NetworkPlan {
  /** The Sequential's name ('generator', 'discriminator'). */
  name: string;
  /** Per-sample input shape, no batch axis. */
  inputShape: number[];
  /** At least one layer; names unique within the network. */
  layers: LayerPlan[];
}

export interface PlanCounts {
  /** Floats of the trainable variables (kernels, biases, γ, β). */
  trainable: number;
  /** Floats of the non-trainable state (BN moving mean and variance). */
  state: number;
  /** Per-sample output shape of the last layer. */
  outputShape: number[];
}

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const isPosInt = (v: number): boolean => Number.isSafeInteger(v) && v >= 1;

/** A plan that cannot be built: a bug in a model definition, never a user error. */
function planError(plan: NetworkPlan, layer: LayerPlan | undefined, what: string): Error {
  return new Error(`layer plan ${plan.name}${layer ? `/${layer.name}` : ''}: ${what}`);
}

/** Side after a stride-s (transposed) convolution, as tfjs-layers computes it. */
function convSide(side: number, l: Extract<LayerPlan, { filters: number }>): number {
  const { kernelSize: k, strides: s, padding } = l;
  if (l.type === 'conv2d') return padding === 'same' ? Math.ceil(side / s) : Math.ceil((side - k + 1) / s);
  return padding === 'same' ? side * s : side * s + Math.max(k - s, 0);
}

/**
 * Walks the plan: each layer's output shape and the floats of its variables.
 * Throws a plain Error (a definition bug) for a layer that does not fit its
 * input: a conv on a non-image, a reshape that changes the size, a
 * non-positive size, a repeated name.
 */
export function countPlan(plan: NetworkPlan): PlanCounts {
  if (plan.layers.length === 0) throw planError(plan, undefined, 'no layers');
  if (plan.inputShape.length === 0 || !plan.inputShape.every(isPosInt)) {
    throw planError(plan, undefined, `input shape [${plan.inputShape.join(', ')}] is not a list of positive integers`);
  }
  const names = new Set<string>();
  let shape = [...plan.inputShape];
  let trainable = 0;
  let state = 0;
  for (const l of plan.layers) {
    if (names.has(l.name)) throw planError(plan, l, 'name used twice');
    names.add(l.name);
    const last = shape[shape.length - 1]!;
    switch (l.type) {
      case 'dense':
        if (!isPosInt(l.units)) throw planError(plan, l, `units ${l.units} is not a positive integer`);
        trainable += last * l.units + (l.useBias ? l.units : 0);
        shape = [...shape.slice(0, -1), l.units];
        break;
      case 'conv2d':
      case 'conv2dTranspose': {
        if (shape.length !== 3) throw planError(plan, l, `needs an [H, W, C] input, got [${shape.join(', ')}]`);
        if (![l.filters, l.kernelSize, l.strides].every(isPosInt)) throw planError(plan, l, 'filters, kernelSize and strides must be positive integers');
        trainable += l.kernelSize * l.kernelSize * last * l.filters + (l.useBias ? l.filters : 0);
        shape = [convSide(shape[0]!, l), convSide(shape[1]!, l), l.filters];
        if (!shape.every(isPosInt)) throw planError(plan, l, `output shape [${shape.join(', ')}] is empty`);
        break;
      }
      case 'batchNorm':
        trainable += 2 * last;
        state += 2 * last;
        break;
      case 'leakyReLU':
        break;
      case 'reshape':
        if (!l.targetShape.every(isPosInt) || product(l.targetShape) !== product(shape)) {
          throw planError(plan, l, `cannot reshape [${shape.join(', ')}] to [${l.targetShape.join(', ')}]`);
        }
        shape = [...l.targetShape];
        break;
      case 'flatten':
        shape = [product(shape)];
        break;
    }
  }
  return { trainable, state, outputShape: shape };
}
