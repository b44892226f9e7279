/**
 * GAN losses computed from D's logits l (D = σ(l)) in their stable softplus
 * forms, never from probabilities:
 *   log σ(l)     = −softplus(−l)
 *   log(1 − σ(l)) = −softplus(l)
 * softplus itself is evaluated by every tfjs backend without overflow.
 */
import { tf } from '../compute/tf.js';

/**
 * D loss −½[E log D(x) + E log(1 − D(G(z)))], with one-sided label smoothing
 * s: the real term becomes the cross-entropy against target t = 1 − s,
 * t·softplus(−l) + (1 − t)·softplus(l). Means are over this slice.
 */
export function discriminatorLoss(realLogits: tf.Tensor, fakeLogits: tf.Tensor, labelSmoothing = 0): tf.Scalar {
  return tf.tidy(() => {
    const t = 1 - labelSmoothing;
    let realTerm = tf.softplus(tf.neg(realLogits));
    if (labelSmoothing !== 0) {
      realTerm = tf.add(tf.mul(realTerm, t), tf.mul(tf.softplus(realLogits), labelSmoothing));
    }
    const fakeTerm = tf.softplus(fakeLogits);
    return tf.mul(tf.add(tf.mean(realTerm), tf.mean(fakeTerm)), 0.5) as tf.Scalar;
  });
}

/**
 * Bernoulli entropy (nats) of σ(l), element-wise:
 * H = −p log p − (1 − p) log(1 − p) = p·softplus(−l) + (1 − p)·softplus(l).
 */
export function bernoulliEntropy(logits: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    return tf.add(tf.mul(p, tf.softplus(tf.neg(logits))), tf.mul(tf.sub(1, p), tf.softplus(logits)));
  });
}

/** Non-saturating G loss −E log D(G(z)) + λ·E H[D(G(z))] = E softplus(−l) + λ·E H(l). */
export function generatorLoss(fakeLogits: tf.Tensor, entropyWeight = 0): tf.Scalar {
  return tf.tidy(() => {
    const nonSaturating = tf.mean(tf.softplus(tf.neg(fakeLogits)));
    if (entropyWeight === 0) return nonSaturating as tf.Scalar;
    return tf.add(nonSaturating, tf.mul(tf.mean(bernoulliEntropy(fakeLogits)), entropyWeight)) as tf.Scalar;
  });
}

/**
 * D's accuracy at threshold 0.5 (D > 0.5 ⇔ l > 0): the share of reals with
 * l > 0 and the share of fakes with l < 0. Exactly 0.5 counts as wrong both ways.
 */
export function discriminatorAccuracy(realLogits: tf.Tensor, fakeLogits: tf.Tensor): { real: tf.Scalar; fake: tf.Scalar } {
  return tf.tidy(() => ({
    real: tf.mean(tf.cast(tf.greater(realLogits, 0), 'float32')) as tf.Scalar,
    fake: tf.mean(tf.cast(tf.less(fakeLogits, 0), 'float32')) as tf.Scalar,
  }));
}
