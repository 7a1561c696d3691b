// The latency model's solver: the minimiser of ½θᵀHθ − gᵀθ over θ ≥ 0, for a small symmetric
// positive-definite H (6×6 here). Lawson and Hanson's active-set method (NNLS) on the quadratic form:
// exact (not an iteration that stops short), a few Cholesky solves of the free block, and it
// terminates because every step lowers the objective. The system is scaled to a unit diagonal
// first, so features measured in very different units (per request, per 1000 tokens, per MB) do not
// make the pivots or the tolerances meaningless. Each solve starts from the previous solve's set of
// free coefficients: between two requests it rarely changes, and then one Cholesky solve and a
// gradient check are the whole work.

const MAX_STEPS = 64;
/** A free coefficient below this (on the unit-diagonal scale) has reached its bound. */
const ZERO = 1e-12;
/** Pivots below this (the diagonal is 1) mean the free block is not numerically definite. */
const MIN_PIVOT = 1e-14;

export class NonNegativeQuadratic {
  readonly #n: number;
  readonly #h: Float64Array;
  readonly #g: Float64Array;
  readonly #d: Float64Array;
  readonly #u: Float64Array;
  readonly #z: Float64Array;
  readonly #y: Float64Array;
  readonly #l: Float64Array;
  readonly #free: Uint8Array;
  readonly #index: Int32Array;

  constructor(n: number) {
    this.#n = n;
    this.#h = new Float64Array(n * n);
    this.#g = new Float64Array(n);
    this.#d = new Float64Array(n);
    this.#u = new Float64Array(n);
    this.#z = new Float64Array(n);
    this.#y = new Float64Array(n);
    this.#l = new Float64Array(n * n);
    // Every coefficient free to start with: an unconstrained solution is the common case.
    this.#free = new Uint8Array(n).fill(1);
    this.#index = new Int32Array(n);
  }

  /**
   * Writes argmin ½θᵀHθ − gᵀθ subject to θ ≥ 0 into `theta`. `h` is n×n row-major and symmetric.
   * Returns false (theta untouched) when the inputs are not finite or H is not positive definite.
   */
  solve(h: Float64Array, g: Float64Array, theta: Float64Array): boolean {
    const n = this.#n;
    const scaled = this.#h;
    const d = this.#d;
    for (let i = 0; i < n; i++) {
      const diagonal = h[i * n + i] as number;
      if (!(diagonal > 0 && diagonal < Number.POSITIVE_INFINITY)) return false;
      d[i] = Math.sqrt(diagonal);
    }
    let scale = 0;
    for (let i = 0; i < n; i++) {
      const gi = (g[i] as number) / (d[i] as number);
      if (!Number.isFinite(gi)) return false;
      this.#g[i] = gi;
      scale = Math.max(scale, Math.abs(gi));
      for (let j = 0; j < n; j++) {
        const value = (h[i * n + j] as number) / ((d[i] as number) * (d[j] as number));
        if (!Number.isFinite(value)) return false;
        scaled[i * n + j] = value;
      }
    }
    const tolerance = 1e-10 * Math.max(scale, 1e-300);
    const u = this.#u;
    const free = this.#free;
    u.fill(0);
    // Warm start: the previous free set, shrunk until its solution is feasible.
    if (!this.#descend()) return false;
    for (let step = 0; step < MAX_STEPS; step++) {
      // The coefficient at its bound whose gradient most wants it to grow enters the free set.
      let entering = -1;
      let best = tolerance;
      for (let i = 0; i < n; i++) {
        if (free[i] === 1) continue;
        let gradient = this.#g[i] as number;
        for (let j = 0; j < n; j++) gradient -= (scaled[i * n + j] as number) * (u[j] as number);
        if (gradient > best) {
          best = gradient;
          entering = i;
        }
      }
      if (entering < 0) break;
      free[entering] = 1;
      if (!this.#descend()) return false;
    }
    for (let i = 0; i < n; i++) if (!Number.isFinite(u[i] as number)) return false;
    for (let i = 0; i < n; i++) theta[i] = (u[i] as number) / (d[i] as number);
    return true;
  }

  /**
   * Lawson–Hanson's inner loop: solves the free block, and while that solution leaves the feasible
   * region steps toward it as far as feasibility allows and fixes the coefficients that reached 0.
   */
  #descend(): boolean {
    const n = this.#n;
    const u = this.#u;
    const z = this.#z;
    const free = this.#free;
    for (let inner = 0; inner <= n; inner++) {
      if (!this.#solveFree()) return false;
      let feasible = true;
      for (let i = 0; i < n; i++) if (free[i] === 1 && !((z[i] as number) > ZERO)) feasible = false;
      if (feasible) {
        for (let i = 0; i < n; i++) u[i] = free[i] === 1 ? (z[i] as number) : 0;
        return true;
      }
      let alpha = 1;
      for (let i = 0; i < n; i++) {
        if (free[i] !== 1) continue;
        const target = z[i] as number;
        const current = u[i] as number;
        // A coefficient already at 0 whose target is 0 too allows no step at all (not 0/0).
        const drop = current - target;
        if (target <= ZERO) alpha = Math.min(alpha, drop > 0 ? current / drop : 0);
      }
      for (let i = 0; i < n; i++) {
        if (free[i] !== 1) continue;
        const current = u[i] as number;
        const next = current + alpha * ((z[i] as number) - current);
        if (next <= ZERO) {
          u[i] = 0;
          free[i] = 0;
        } else {
          u[i] = next;
        }
      }
    }
    return true;
  }

  /** Cholesky solve of the free block, H[F,F] z[F] = g[F]; z is 0 elsewhere. */
  #solveFree(): boolean {
    const n = this.#n;
    const h = this.#h;
    const l = this.#l;
    const y = this.#y;
    const z = this.#z;
    const index = this.#index;
    let m = 0;
    for (let i = 0; i < n; i++) if (this.#free[i] === 1) index[m++] = i;
    z.fill(0);
    for (let i = 0; i < m; i++) {
      const row = index[i] as number;
      for (let j = 0; j <= i; j++) {
        let sum = h[row * n + (index[j] as number)] as number;
        for (let k = 0; k < j; k++) sum -= (l[i * n + k] as number) * (l[j * n + k] as number);
        if (i === j) {
          if (!(sum > MIN_PIVOT)) return false;
          l[i * n + i] = Math.sqrt(sum);
        } else {
          l[i * n + j] = sum / (l[j * n + j] as number);
        }
      }
    }
    for (let i = 0; i < m; i++) {
      let sum = this.#g[index[i] as number] as number;
      for (let k = 0; k < i; k++) sum -= (l[i * n + k] as number) * (y[k] as number);
      y[i] = sum / (l[i * n + i] as number);
    }
    for (let i = m - 1; i >= 0; i--) {
      let sum = y[i] as number;
      for (let k = i + 1; k < m; k++) sum -= (l[k * n + i] as number) * (z[index[k] as number] as number);
      z[index[i] as number] = sum / (l[i * n + i] as number);
    }
    return true;
  }
}
