// Command soakchart draws the chart of a soak run: it reads the soak.csv
// that `dashstream bench --soak` (or the demo.csv of scripts/demo-soak.sh)
// writes and renders store file size, broker log, server RSS, goroutines
// and produce → client latency over time as one PNG, skipping the columns
// the CSV lacks. It is a module of its own, so that the plotting library stays out
// of the dashstream module.
//
//	go run . -in soak-out/soak.csv -out soak-out/soak.png
package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	in := flag.String("in", "soak-out/soak.csv", "soak.csv written by dashstream bench --soak")
	out := flag.String("out", "soak-out/soak.png", "PNG to write")
	title := flag.String("title", "dashstream soak", "chart title")
	verdict := flag.String("json", "", "soak.json: marks the warm-up and puts the verdict in the title")
	flag.Parse()
	if err := run(*in, *out, *title, *verdict); err != nil {
		fmt.Fprintln(os.Stderr, "soakchart:", err)
		os.Exit(1)
	}
}

// series is one CSV column over time.
type series struct {
	name string
	pts  plotter.XYs
}

func readCSV(path string) (map[string]plotter.XYs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cols := map[string]plotter.XYs{}
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		t, err := strconv.ParseFloat(row[0], 64)
		if err != nil {
			return nil, fmt.Errorf("reading %s: t %q: %w", path, row[0], err)
		}
		for i := 1; i < len(row) && i < len(head); i++ {
			v, err := strconv.ParseFloat(row[i], 64)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %s %q: %w", path, head[i], row[i], err)
			}
			cols[head[i]] = append(cols[head[i]], plotter.XY{X: t, Y: v})
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s has no samples", path)
	}
	return cols, nil
}

func scale(xys plotter.XYs, f float64) plotter.XYs {
	out := make(plotter.XYs, len(xys))
	for i, p := range xys {
		out[i] = plotter.XY{X: p.X, Y: p.Y * f}
	}
	return out
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// panel is one plot of the chart.
func panel(title, ylabel string, ss ...series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	for i, s := range ss {
		l, err := plotter.NewLine(s.pts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		if len(ss) > 1 {
			p.Legend.Add(s.name, l)
		}
	}
	p.Legend.Top = true
	return p, nil
}

// verdictOf reads the warm-up and the overall verdict from soak.json.
func verdictOf(path string) (warmup float64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("reading %s: %w", path, err)
	}
	var v struct {
		Warmup float64 `json:"warmup_seconds"`
		OK     bool    `json:"ok"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return v.Warmup, v.OK, nil
}

// empty reports whether no series has a sample.
func empty(ss []series) bool {
	for _, s := range ss {
		if len(s.pts) > 0 {
			return false
		}
	}
	return true
}

// nonZero drops samples of intervals without any (latency 0).
func nonZero(xys plotter.XYs) plotter.XYs {
	var out plotter.XYs
	for _, p := range xys {
		if p.Y > 0 {
			out = append(out, p)
		}
	}
	return out
}

func run(in, out, title, verdictPath string) error {
	cols, err := readCSV(in)
	if err != nil {
		return err
	}
	warmup := -1.0
	if verdictPath != "" {
		w, ok, err := verdictOf(verdictPath)
		if err != nil {
			return err
		}
		warmup = w
		title += map[bool]string{true: " — levelled off after the warm-up: OK", false: " — NOT levelled off"}[ok]
	}
	const mib = 1.0 / (1 << 20)
	var plots []*plot.Plot
	for _, spec := range []struct {
		title, ylabel string
		ss            []series
	}{
		{"store file size", "MiB", []series{{"file", scale(cols["file_bytes"], mib)}}},
		{"embedded broker log", "MiB", []series{{"broker log", scale(cols["kafka_bytes"], mib)}}},
		{"server RSS", "MiB", []series{{"rss", scale(cols["rss_bytes"], mib)}}},
		{"server goroutines", "goroutines", []series{{"goroutines", cols["goroutines"]}}},
		{"records retained (retention active: the count levels off)", "records", []series{{"retained", cols["store_records"]}}},
		{"throughput", "records/s", []series{{"produced/s", cols["produced_per_s"]}, {"delivered/s", cols["delivered_per_s"]}}},
		{"produce → client latency, and the disk's own fdatasync", "ms", []series{
			{"p50", nonZero(cols["e2e_p50_ms"])}, {"p99", nonZero(cols["e2e_p99_ms"])}, {"disk fsync p99", nonZero(cols["disk_fsync_p99_ms"])}}},
	} {
		if empty(spec.ss) {
			continue // a column this CSV does not have (the demo soak samples fewer)
		}
		p, err := panel(spec.title, spec.ylabel, spec.ss...)
		if err != nil {
			return err
		}
		if warmup >= 0 {
			if err := markWarmup(p, warmup); err != nil {
				return err
			}
		}
		plots = append(plots, p)
	}
	const w, rowH = 22 * vg.Centimeter, 6 * vg.Centimeter
	img := vgimg.New(w, rowH*vg.Length(len(plots))+vg.Centimeter)
	dc := draw.New(img)
	top := dc
	top.Min.Y = top.Max.Y - vg.Centimeter
	top.FillText(draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 14),
		Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YCenter},
		vg.Point{X: w / 2, Y: top.Max.Y - vg.Centimeter/2}, title)
	body := dc
	body.Max.Y -= vg.Centimeter
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, body)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return f.Close()
}

// markWarmup draws a dashed vertical line at the end of the warm-up.
func markWarmup(p *plot.Plot, at float64) error {
	p.Y.Max = max(p.Y.Max, 1)
	l, err := plotter.NewLine(plotter.XYs{{X: at, Y: 0}, {X: at, Y: p.Y.Max}})
	if err != nil {
		return fmt.Errorf("warm-up mark: %w", err)
	}
	l.Color = color.Gray{Y: 0x80}
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	return nil
}
