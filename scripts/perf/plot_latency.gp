# Latency by percentile, HdrHistogram style: one or more .hgrm files (HdrHistogram's percentile
# distribution text, as ringtail-recv --latency writes it, values in µs) overlaid in one PNG.
# x: the percentile on a "number of nines" axis, x = 1/(1-p) on a log scale, labelled 0%, 90%,
# 99%, ... ; y: latency in µs on a log scale. The 100% row (x infinite) is left out; each curve's
# maximum is in its key title instead.
#
#   gnuplot -e "files='a.hgrm b.hgrm'; titles='run-a run-b'; out='x.png'; maxes='812.1 900.3'" \
#       scripts/perf/plot_latency.gp
#
# files, titles and maxes are space-separated (paths and titles must not contain spaces); maxes
# (µs) and plot_title are optional.
if (!exists("files")) { print "plot_latency.gp: set files='a.hgrm ...'"; exit status 64 }
if (!exists("out")) { out = "latency.png" }
if (!exists("titles")) { titles = files }
if (!exists("maxes")) { maxes = "" }
if (!exists("plot_title")) { plot_title = "Latency by percentile" }

# pngcairo when gnuplot has it (gnuplot-nox does), else the libgd png terminal.
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1000,620 enhanced font "sans,10"
} else {
    set terminal png size 1000,620 font "sans,10"
}
set output out

set title plot_title
set xlabel "percentile (x = 1/(1-p), log scale: each tick one more nine)"
set ylabel "latency (µs, log scale)"
set logscale x 10
set logscale y 10
set xrange [1:1e6]
set xtics ("0%%" 1, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 1e4, "99.999%%" 1e5, \
           "99.9999%%" 1e6)
set format y "%g"
set grid xtics ytics mytics
set key top left box opaque
set datafile commentschars "#"

# Only the data rows: lines that start with a number and have a finite 4th column.
rows(f) = sprintf("< awk '$1 ~ /^[0-9.]+$/ && NF == 4 && $4 != \"inf\" && $4 != \"Infinity\"' '%s'", f)
label(i) = word(titles, i) . (words(maxes) >= i ? sprintf(" (max %s µs)", word(maxes, i)) : "")

plot for [i=1:words(files)] rows(word(files, i)) using 4:1 with lines linewidth 2 \
    title label(i) noenhanced
