/// Philox4x32-10 (Salmon et al., SC 2011), the counter-based generator behind every random number in Refit.
///
/// Element n of a stream with a given seed is a pure function of (seed, n), so any rollout can be replayed,
/// by any backend, from any point. `Kernels/random.cl` is the OpenCL twin and must stay bit-identical:
/// the normal transform therefore uses only +, −, × and bit operations (IEEE-exact everywhere, with
/// contraction into FMA disabled in the kernel), never the platform's log, sqrt, sin or cos.
public enum Philox {
    /// The four 32-bit outputs for a 128-bit counter and a 64-bit key.
    @inline(__always)
    public static func block(counter: (UInt32, UInt32, UInt32, UInt32), key: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = counter
        var k0 = UInt32(truncatingIfNeeded: key)
        var k1 = UInt32(truncatingIfNeeded: key >> 32)
        for round in 0..<10 {
            if round > 0 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53) * UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c2)
            let hi0 = UInt32(p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }

    /// Maps 32 random bits to a float in (0, 1], exactly: (⌊u/2⁸⌋ + 1)·2⁻²⁴.
    @inline(__always)
    public static func unitInterval(_ bits: UInt32) -> Float { Float((bits >> 8) + 1) * 0x1p-24 }

    /// Element `index` of the uniform stream: counter (index/4, stream 0), output word index mod 4.
    public static func uniform(seed: UInt64, index: UInt64) -> Float {
        let block = index >> 2
        let words = Self.block(counter: (UInt32(truncatingIfNeeded: block), UInt32(block >> 32), 0, 0), key: seed)
        let word: UInt32
        switch index & 3 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return unitInterval(word)
    }

    /// Element `index` of the normal stream: Box–Muller on words 0 and 1 of counter (index/2, stream 1);
    /// even indices take the cosine branch, odd the sine branch.
    public static func normal(seed: UInt64, index: UInt64) -> Float {
        let pair = index >> 1
        let words = block(counter: (UInt32(truncatingIfNeeded: pair), UInt32(pair >> 32), 1, 0), key: seed)
        let radius = exactSqrt(-2 * exactLog(unitInterval(words.0)))
        let turn = Float(words.1 >> 8) * 0x1p-24  // [0, 1)
        let (cosine, sine) = exactCosSin2Pi(turn)
        return radius * (index & 1 == 0 ? cosine : sine)
    }

    // MARK: Transcendentals from + − × only (near-minimax polynomials fitted in Float64, stored in Float32)

    /// ln(u) for u in (0, 1]: u = m·2ᵉ with m in [√½, √2), then a degree-11 polynomial in m − 1 (error ≈ 3e-9).
    @inline(__always)
    static func exactLog(_ u: Float) -> Float {
        var bits = u.bitPattern
        var exponent = Int32((bits >> 23) & 0xFF) - 127
        bits = (bits & 0x007F_FFFF) | 0x3F80_0000  // mantissa as a float in [1, 2)
        var m = Float(bitPattern: bits)
        if m > 1.41421356 { m = m * 0.5; exponent += 1 }
        let f = m - 1
        var p: Float = 6.544440985e-02
        p = p * f + -1.178408414e-01
        p = p * f + 1.206534430e-01
        p = p * f + -1.240121126e-01
        p = p * f + 1.418882459e-01
        p = p * f + -1.666656137e-01
        p = p * f + 2.000413537e-01
        p = p * f + -2.500011921e-01
        p = p * f + 3.333325982e-01
        p = p * f + -4.999999702e-01
        p = p * f + 1.0
        p = p * f
        return Float(exponent) * 0.693147182 + p
    }

    /// √x for x ≥ 0: the classic bit-level reciprocal-square-root seed and three Newton steps, then x·(1/√x).
    @inline(__always)
    static func exactSqrt(_ x: Float) -> Float {
        if x <= 0 { return 0 }
        var r = Float(bitPattern: 0x5F37_59DF &- (x.bitPattern >> 1))
        let half = x * 0.5
        r = r * (1.5 - half * r * r)
        r = r * (1.5 - half * r * r)
        r = r * (1.5 - half * r * r)
        return x * r
    }

    /// (cos 2πv, sin 2πv) for v in [0, 1): the quadrant from ⌊4v⌋ (exact), then polynomials about π/4.
    @inline(__always)
    static func exactCosSin2Pi(_ v: Float) -> (Float, Float) {
        let scaled = v * 4  // exact
        let quadrant = Int32(scaled)  // truncation = floor for v ≥ 0
        let d = (scaled - Float(quadrant)) - 0.5  // in [−0.5, 0.5): angle = π/4 + d·π/2 within the quadrant
        var c: Float = -1.757220161e-05
        c = c * d + -1.117116699e-04
        c = c * d + 6.499454612e-04
        c = c * d + 3.310066648e-03
        c = c * d + -1.475269999e-02
        c = c * d + -5.635114759e-02
        c = c * d + 1.793714315e-01
        c = c * d + 4.567655921e-01
        c = c * d + -8.723580241e-01
        c = c * d + -1.110720754e+00
        c = c * d + 7.071067691e-01
        var s: Float = -1.757231257e-05
        s = s * d + 1.117116335e-04
        s = s * d + 6.499455194e-04
        s = s * d + -3.310066648e-03
        s = s * d + -1.475269999e-02
        s = s * d + 5.635114759e-02
        s = s * d + 1.793714315e-01
        s = s * d + -4.567655921e-01
        s = s * d + -8.723580241e-01
        s = s * d + 1.110720754e+00
        s = s * d + 7.071067691e-01
        // Rotating by quadrant·π/2 permutes and negates (cos, sin).
        switch quadrant & 3 {
        case 0: return (c, s)
        case 1: return (-s, c)
        case 2: return (-c, -s)
        default: return (s, -c)
        }
    }
}
