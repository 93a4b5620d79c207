//! Draws a [`Chart`] as a PNG: plotters renders into a pixel buffer, the `png` crate encodes it.
//! Labels need a TrueType font: DejaVu Sans, from Debian's `fonts-dejavu-core` (bench/run.sh
//! installs it when missing).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::report::Chart;

const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;
const HEIGHT: u32 = 520;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub fn draw(chart: &Chart, path: &Path) -> Result<(), String> {
    register_font()?;
    let points = chart.series.iter().flat_map(|(_, points)| points).filter(|(x, y)| *x > 0.0 && *y > 0.0);
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, f64::MIN_POSITIVE);
    for (x, y) in points {
        x_max = x_max.max(*x);
        y_min = y_min.min(*y);
        y_max = y_max.max(*y);
    }
    if y_min > y_max {
        return Err(format!("chart {}: no points", chart.file));
    }
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    render(chart, &mut pixels, x_max * 1.5, (y_min / 2.0, y_max * 2.0))
        .map_err(|error| format!("chart {}: {error}", chart.file))?;
    let file = std::fs::File::create(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels))
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// Registers the font once: plotters keeps it for the life of the process.
fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let font = std::fs::read(FONT_PATH)
                .map_err(|error| format!("{FONT_PATH} (Debian: fonts-dejavu-core): {error}"))?;
            plotters::style::register_font(FONT, FontStyle::Normal, Box::leak(font.into_boxed_slice()))
                .map_err(|_| format!("{FONT_PATH} is not a TrueType font"))
        })
        .clone()
}

fn render<'a>(
    chart: &Chart,
    pixels: &'a mut [u8],
    x_max: f64,
    (y_min, y_max): (f64, f64),
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((0.8f64..x_max).log_scale(), (y_min..y_max).log_scale())?;
    plot.configure_mesh().x_desc(&chart.x_label).y_desc(&chart.y_label).label_style((FONT, 13)).draw()?;
    for ((name, points), color) in chart.series.iter().zip(COLORS.iter().cycle()) {
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| *x > 0.0 && *y > 0.0).collect();
        let style = color.stroke_width(2);
        plot.draw_series(LineSeries::new(points.clone(), style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        plot.draw_series(points.into_iter().map(|point| Circle::new(point, 3, color.filled())))?;
    }
    plot.configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
