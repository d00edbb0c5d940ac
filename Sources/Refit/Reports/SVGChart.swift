import Foundation

/// A line chart drawn as inline SVG: axes with ticks at round numbers, axis labels with units, a legend above the plot
/// (so it never covers a curve), optional ± bands, a marked x (the best epoch) and a reference level (the pre-trained
/// model's). No scripts and no external resources, so a report opens offline.
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

    /// A vertical line at `x`, labelled; the first series' point there is drawn larger.
    public struct Marker {
        public var x: Double
        public var label: String

        public init(x: Double, label: String) {
            self.x = x
            self.label = label
        }
    }

    /// A dashed horizontal line at `y`, named in the legend.
    public struct Level {
        public var y: Double
        public var name: String

        public init(y: Double, name: String) {
            self.y = y
            self.name = name
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var marker: Marker?
    public var level: Level?
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    public init(title: String, xLabel: String, yLabel: String, series: [Series], marker: Marker? = nil, level: Level? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.marker = marker
        self.level = level
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
        return s.replacingOccurrences(of: "-", with: "−")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    public var svg: String {
        let all = series.flatMap { s in s.points.enumerated().flatMap { i, p -> [(Double, Double)] in
            let b = s.band?[i] ?? 0
            return [(p.x, p.y - b), (p.x, p.y + b)]
        } }.filter { $0.0.isFinite && $0.1.isFinite }
        let frame = ChartFrame(title: title)
        guard !all.isEmpty else { return frame.empty }
        var (x0, x1) = (all.map(\.0).min()!, all.map(\.0).max()!)
        var (y0, y1) = (all.map(\.1).min()!, all.map(\.1).max()!)
        if let level, level.y.isFinite { (y0, y1) = (min(y0, level.y), max(y1, level.y)) }
        if x0 == x1 { x0 -= 1; x1 += 1 }
        if y0 == y1 { let pad = max(abs(y0) * 0.05, 1e-6); y0 -= pad; y1 += pad }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        let plot = frame.plot
        func px(_ x: Double) -> Double { plot.x + (x - x0) / (x1 - x0) * plot.width }
        func py(_ y: Double) -> Double { plot.y + (1 - (y - y0) / (y1 - y0)) * plot.height }
        let integerAxis = series.allSatisfy { $0.points.allSatisfy { $0.x == $0.x.rounded() } }
        var out = frame.open + frame.yAxis(Self.ticks(y0, y1).map { (py($0), Self.label($0)) })
        for t in Self.ticks(x0, x1, integers: integerAxis) {
            out += frame.xTick(at: px(t), Self.label(t))
        }
        out += frame.axisLabels(x: xLabel, y: yLabel)
        if let level, level.y.isFinite {
            out += "<line x1='\(plot.x)' y1='\(py(level.y))' x2='\(plot.x + plot.width)' y2='\(py(level.y))' stroke='#777' stroke-width='1.5' stroke-dasharray='6 4'/>"
        }
        if let marker, marker.x >= x0, marker.x <= x1 {
            // The label goes beside the line, away from the marked point: to its left near the right edge, at the
            // bottom when the point is high.
            let x = px(marker.x), right = x > plot.x + plot.width * 0.7
            let high = series.first?.points.first { $0.x == marker.x }.map { py($0.y) < plot.y + plot.height / 2 } ?? false
            out += "<line x1='\(x)' y1='\(plot.y)' x2='\(x)' y2='\(plot.y + plot.height)' stroke='#2ca02c' stroke-width='1.5' stroke-dasharray='3 3'/>"
            out += "<text x='\(right ? x - 5 : x + 5)' y='\(high ? plot.y + plot.height - 6 : plot.y + 13)' text-anchor='\(right ? "end" : "start")' "
                + "fill='#1b7a1b' stroke='#fff' stroke-width='3' paint-order='stroke'>\(Self.escape(marker.label))</text>"
        }
        var legend: [ChartFrame.LegendEntry] = []
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
            if index == 0, let marker, let best = points.first(where: { $0.x == marker.x }) {
                out += "<circle class='best' cx='\(px(best.x))' cy='\(py(best.y))' r='5.5' fill='\(color)' stroke='#fff' stroke-width='2'/>"
            }
            legend.append(.init(name: s.name + (s.band == nil ? "" : " (± std)"), color: color, swatch: .line))
        }
        if let level, level.y.isFinite { legend.append(.init(name: level.name, color: "#777", swatch: .dashedLine)) }
        return out + frame.legend(legend) + "</svg>"
    }
}

/// The parts both chart kinds share: the canvas, title, plot frame, y grid, axis labels and the legend row between the
/// title and the plot.
struct ChartFrame {
    var title: String
    var width = 560.0, height = 300.0
    let margin = (left: 64.0, right: 16.0, top: 46.0, bottom: 44.0)

    struct LegendEntry {
        enum Swatch { case line, dashedLine, box }
        var name: String
        var color: String
        var swatch: Swatch
    }

    var plot: (x: Double, y: Double, width: Double, height: Double) {
        (margin.left, margin.top, width - margin.left - margin.right, height - margin.top - margin.bottom)
    }

    var empty: String {
        "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='60' font-family='sans-serif'><title>\(SVGChart.escape(title))</title>"
            + "<text x='10' y='30' font-size='13'>\(SVGChart.escape(title)): no data</text></svg>"
    }

    var open: String {
        "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='\(Int(height))' font-family='sans-serif' font-size='11'>"
            + "<title>\(SVGChart.escape(title))</title>"
            + "<text x='\(margin.left)' y='16' font-size='13' font-weight='bold'>\(SVGChart.escape(title))</text>"
            + "<rect x='\(plot.x)' y='\(plot.y)' width='\(plot.width)' height='\(plot.height)' fill='none' stroke='#999'/>"
    }

    /// Grid lines and labels at the given (pixel y, label) ticks.
    func yAxis(_ ticks: [(y: Double, label: String)]) -> String {
        ticks.map { t in
            "<line x1='\(plot.x - 4)' y1='\(t.y)' x2='\(plot.x + plot.width)' y2='\(t.y)' stroke='#e3e3e3'/>"
                + "<text x='\(plot.x - 7)' y='\(t.y + 4)' text-anchor='end'>\(SVGChart.escape(t.label))</text>"
        }.joined()
    }

    func xTick(at x: Double, _ label: String) -> String {
        let bottom = plot.y + plot.height
        return "<line x1='\(x)' y1='\(bottom)' x2='\(x)' y2='\(bottom + 4)' stroke='#444'/>"
            + "<text x='\(x)' y='\(bottom + 16)' text-anchor='middle'>\(SVGChart.escape(label))</text>"
    }

    func axisLabels(x: String, y: String) -> String {
        "<text x='\(plot.x + plot.width / 2)' y='\(height - 8)' text-anchor='middle' fill='#333'>\(SVGChart.escape(x))</text>"
            + "<text transform='translate(14,\(plot.y + plot.height / 2)) rotate(-90)' text-anchor='middle' fill='#333'>\(SVGChart.escape(y))</text>"
    }

    /// One row of entries under the title, left to right.
    func legend(_ entries: [LegendEntry]) -> String {
        var out = "", x = margin.left
        for entry in entries {
            switch entry.swatch {
            case .line, .dashedLine:
                let dash = entry.swatch == .dashedLine ? " stroke-dasharray='6 4'" : ""
                out += "<line x1='\(x)' y1='30' x2='\(x + 20)' y2='30' stroke='\(entry.color)' stroke-width='2'\(dash)/>"
            case .box:
                out += "<rect x='\(x + 4)' y='24' width='12' height='12' fill='\(entry.color)'/>"
            }
            out += "<text x='\(x + 25)' y='34'>\(SVGChart.escape(entry.name))</text>"
            x += 38 + Double(entry.name.count) * 6.2
        }
        return out
    }
}

/// A bar chart drawn as inline SVG: one group of bars per category, one bar per series, from zero. `labels` name the
/// categories under their bars, or, one more than the categories, the edges between them (a histogram's bins).
public struct SVGBarChart {
    public struct Series {
        public var name: String
        public var values: [Double]
        /// The bars' colours, repeated: one for the whole series, or one per bar (a histogram coloured by sign); nil: the
        /// palette's colour of the series.
        public var colors: [String]?

        public init(name: String, values: [Double], colors: [String]? = nil) {
            self.name = name
            self.values = values
            self.colors = colors
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var labels: [String]
    public var series: [Series]

    public init(title: String, xLabel: String, yLabel: String, labels: [String], series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.labels = labels
        self.series = series
    }

    public var svg: String {
        let frame = ChartFrame(title: title)
        let categories = series.map(\.values.count).max() ?? 0
        let top = series.flatMap(\.values).filter(\.isFinite).max() ?? 0
        guard categories > 0, top > 0 else { return frame.empty }
        let plot = frame.plot
        let ticks = SVGChart.ticks(0, top * 1.08)
        let y1 = max(ticks.last ?? top, top * 1.08)
        func py(_ y: Double) -> Double { plot.y + (1 - y / y1) * plot.height }
        let slot = plot.width / Double(categories), barWidth = slot * 0.8 / Double(series.count)
        func color(_ series: Int) -> String { SVGChart.colors[series % SVGChart.colors.count] }
        var out = frame.open + frame.yAxis(ticks.map { (py($0), SVGChart.label($0)) })
        for (index, s) in series.enumerated() {
            for (category, value) in s.values.enumerated() where value.isFinite {
                let color = s.colors.map { $0[category % $0.count] } ?? color(index)
                let x = plot.x + Double(category) * slot + slot * 0.1 + Double(index) * barWidth
                out += "<rect x='\(x)' y='\(py(value))' width='\(barWidth)' height='\(py(0) - py(value))' fill='\(color)'><title>\(SVGChart.escape(s.name)): \(SVGChart.label(value))</title></rect>"
            }
        }
        let onEdges = labels.count == categories + 1
        for (index, label) in labels.enumerated() {
            out += frame.xTick(at: plot.x + slot * (Double(index) + (onEdges ? 0 : 0.5)), label)
        }
        out += frame.axisLabels(x: xLabel, y: yLabel)
        if series.count > 1 {
            out += frame.legend(series.indices.map { .init(name: series[$0].name, color: series[$0].colors?.first ?? color($0), swatch: .box) })
        }
        return out + "</svg>"
    }
}
