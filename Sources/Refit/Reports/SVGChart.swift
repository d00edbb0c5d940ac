import Foundation

/// A line chart drawn as inline SVG: axes with ticks at round numbers, axis labels with units, a legend,
/// and optional ± bands. No scripts and no external resources, so a report opens offline.
public struct SVGChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Half-widths of a shaded band around each point (e.g. ± one standard deviation).
        public var band: [Double]? = nil

        public init(name: String, points: [(x: Double, y: Double)], band: [Double]? = nil) {
            self.name = name
            self.points = points
            self.band = band
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    var width = 560.0, height = 300.0
    let margin = (left: 72.0, right: 16.0, top: 30.0, bottom: 46.0)
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Tick positions at 1, 2 or 5 × 10ⁿ spacing covering [low, high].
    /// With `integers` (an epoch axis) the spacing is at least 1.
    static func ticks(_ low: Double, _ high: Double, count: Int = 5, integers: Bool = false) -> [Double] {
        guard high > low else { return [low] }
        let raw = (high - low) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        var step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        if integers { step = max(step, 1) }
        var ticks: [Double] = []
        var t = ceil(low / step) * step
        while t <= high + step * 1e-9 { ticks.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return ticks
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.1e", v) }
        var s = String(format: "%.4f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    public var svg: String {
        let all = series.flatMap { s in s.points.enumerated().flatMap { i, p -> [(Double, Double)] in
            let b = s.band?[i] ?? 0
            return [(p.x, p.y - b), (p.x, p.y + b)]
        } }.filter { $0.0.isFinite && $0.1.isFinite }
        guard !all.isEmpty else {
            return "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='60'><text x='10' y='30' font-family='sans-serif' font-size='13'>\(Self.escape(title)): no data</text></svg>"
        }
        var (x0, x1) = (all.map(\.0).min()!, all.map(\.0).max()!)
        var (y0, y1) = (all.map(\.1).min()!, all.map(\.1).max()!)
        if x0 == x1 { x0 -= 1; x1 += 1 }
        if y0 == y1 { let pad = max(abs(y0) * 0.05, 1e-6); y0 -= pad; y1 += pad }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        let plotWidth = width - margin.left - margin.right, plotHeight = height - margin.top - margin.bottom
        func px(_ x: Double) -> Double { margin.left + (x - x0) / (x1 - x0) * plotWidth }
        func py(_ y: Double) -> Double { margin.top + (1 - (y - y0) / (y1 - y0)) * plotHeight }
        var out = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='\(Int(height))' font-family='sans-serif' font-size='11'>"
        out += "<text x='\(width / 2)' y='18' text-anchor='middle' font-size='13' font-weight='bold'>\(Self.escape(title))</text>"
        out += "<rect x='\(margin.left)' y='\(margin.top)' width='\(plotWidth)' height='\(plotHeight)' fill='none' stroke='#888'/>"
        let integerAxis = series.allSatisfy { $0.points.allSatisfy { $0.x == $0.x.rounded() } }
        for t in Self.ticks(x0, x1, integers: integerAxis) {
            let x = px(t)
            out += "<line x1='\(x)' y1='\(margin.top + plotHeight)' x2='\(x)' y2='\(margin.top + plotHeight + 5)' stroke='#444'/>"
            out += "<text x='\(x)' y='\(margin.top + plotHeight + 17)' text-anchor='middle'>\(Self.label(t))</text>"
        }
        for t in Self.ticks(y0, y1) {
            let y = py(t)
            out += "<line x1='\(margin.left - 5)' y1='\(y)' x2='\(margin.left + plotWidth)' y2='\(y)' stroke='#ddd'/>"
            out += "<text x='\(margin.left - 8)' y='\(y + 4)' text-anchor='end'>\(Self.label(t))</text>"
        }
        out += "<text x='\(margin.left + plotWidth / 2)' y='\(height - 8)' text-anchor='middle'>\(Self.escape(xLabel))</text>"
        out += "<text transform='translate(14,\(margin.top + plotHeight / 2)) rotate(-90)' text-anchor='middle'>\(Self.escape(yLabel))</text>"
        for (index, s) in series.enumerated() {
            let color = Self.colors[index % Self.colors.count]
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            if let band = s.band, band.count == s.points.count {
                let upper = s.points.enumerated().map { "\(px($1.x)),\(py($1.y + band[$0]))" }
                let lower = s.points.enumerated().reversed().map { "\(px($1.x)),\(py($1.y - band[$0]))" }
                out += "<polygon points='\((upper + lower).joined(separator: " "))' fill='\(color)' fill-opacity='0.15' stroke='none'/>"
            }
            out += "<polyline points='\(points.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " "))' fill='none' stroke='\(color)' stroke-width='2'/>"
            for p in points { out += "<circle cx='\(px(p.x))' cy='\(py(p.y))' r='2.5' fill='\(color)'/>" }
            let ly = margin.top + 14 + Double(index) * 15
            out += "<line x1='\(margin.left + 10)' y1='\(ly - 4)' x2='\(margin.left + 28)' y2='\(ly - 4)' stroke='\(color)' stroke-width='2'/>"
            out += "<text x='\(margin.left + 32)' y='\(ly)'>\(Self.escape(s.name))</text>"
        }
        return out + "</svg>"
    }
}
