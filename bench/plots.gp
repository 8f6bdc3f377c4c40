# kcont-bench --plots DIR renders these from the data files it writes in DIR:
#   gnuplot -e "datadir='DIR'; ncdf=N; have_callout=1; have_nic=1" bench/plots.gp
# (a) callout_arm_cancel.png: arm+cancel cost against the number of pending timers, log x, in
#     both deadline cases (earliest, among);
# (b) latency_cdf.png: CDFs of schedule -> run latency per mechanism and the eventfd floor, log x;
# (c) nic_pps.png: simulated NIC packets per second by start mode and TX ring size;
# (d) net_rtt_cdf.png: CDFs of the UDP echo round trip per start mode and the floor, log x
#     (-e also sets nrtt, rtt_closed, rtt_loads, rtt_floor, rtt_wire: see plots.cpp).
if (!exists("datadir")) datadir = "."
if (!exists("ncdf")) ncdf = 0
if (!exists("have_callout")) have_callout = 1
if (!exists("have_nic")) have_nic = 1
if (!exists("nrtt")) nrtt = 0
if (!exists("rtt_closed")) rtt_closed = 0
if (!exists("rtt_loads")) rtt_loads = 1
if (!exists("rtt_floor")) rtt_floor = 0
if (!exists("rtt_wire")) rtt_wire = ""
set datafile missing "NaN"
set terminal pngcairo size 800,500 font "sans,10"
set grid

if (have_callout) {
  set output datadir."/callout_arm_cancel.png"
  set title "Timer arm + cancel cost vs pending timers (median ns per pair)"
  set logscale x 10
  set logscale y 10
  set format x "10^{%L}"
  set xlabel "timers already pending"
  set ylabel "ns per arm+cancel (log)"
  set key top left maxrows 4 font ",8"
  set xrange [500:2e6]
  set yrange [*:1e5]  # room above the Asio rows for the key
  # Columns: 1 pending; 2-5 'earliest' (kcont, Asio poll per 64, Asio poll per pair, libevent);
  # 6-9 'among', the same. Solid: earliest; dashed: among; Asio's poll-per-pair row dotted.
  plot datadir."/callout_arm_cancel.dat" using 1:2 with linespoints lw 2 pt 7 lc 1 \
         title "kcont callout, earliest", \
       "" using 1:6 with linespoints lw 2 dt 2 pt 6 lc 1 title "kcont callout, among", \
       "" using 1:3 with linespoints lw 2 pt 5 lc 2 title "Asio steady\\_timer (poll/64), earliest", \
       "" using 1:7 with linespoints lw 2 dt 2 pt 4 lc 2 title "Asio steady\\_timer (poll/64), among", \
       "" using 1:4 with linespoints lw 1 dt 3 pt 5 lc 4 title "Asio (poll per pair), earliest", \
       "" using 1:5 with linespoints lw 2 pt 9 lc 3 title "libevent evtimer, earliest", \
       "" using 1:9 with linespoints lw 2 dt 2 pt 8 lc 3 title "libevent evtimer, among"
  unset logscale
  set format x "% h"
  set xrange [*:*]
  set yrange [*:*]
}

if (ncdf > 0) {
  set output datadir."/latency_cdf.png"
  set title "schedule -> run latency, one-way (CDF)"
  set logscale x 10
  set xlabel "latency, ns (log)"
  set ylabel "fraction of samples <= x"
  set yrange [0:1]
  set key bottom right font ",8" noenhanced
  set format x "10^{%L}"
  # Series 0 is the eventfd floor: thick, black, dashed. Past 7 series the colours repeat, so
  # those are dotted.
  plot datadir."/latency_cdf.dat" index 0 using 1:2 with lines lw 3 dt 2 lc rgb "black" \
       title columnheader(1), \
       for [i=1:ncdf-1] datadir."/latency_cdf.dat" index i using 1:2 with lines lw 2 \
       dt 1+2*(i>7) lc i title columnheader(1)
  set format x "% h"
  unset logscale
  set yrange [*:*]
}

if (have_nic) {
  set output datadir."/nic_pps.png"
  set title "Simulated NIC: packets per second by start mode"
  set style data histogram
  set style histogram cluster gap 1
  set style fill solid 0.8 border -1
  set boxwidth 0.9
  set xlabel "start mode"
  set ylabel "Mpps"
  set yrange [0:*]
  set xrange [-0.6:2.6]
  set key top right
  plot datadir."/nic_pps.dat" using 2:xtic(1) title columnheader(2), "" using 3 title columnheader(3)
}

if (nrtt > 0) {
  set output datadir."/net_rtt_cdf.png"
  set title "UDP echo round trip, ".rtt_wire." (CDF): kcont per start mode against the floor" noenhanced
  set logscale x 10
  set xlabel "RTT, us (log)"
  set ylabel "fraction of echoes <= x"
  set yrange [0:1]
  set xrange [*:*]
  set key bottom right font ",8" noenhanced
  set format x "% h"
  set style data lines
  # One colour per responder (the floor black and thick), its series rtt_loads in a row; the
  # closed-loop (saturation) series dashed, the fixed-rate ones solid.
  resp(i) = int(i / rtt_loads)
  colour(i) = (rtt_floor && resp(i) == 0) ? "black" : \
              word("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e", 1 + (resp(i) - rtt_floor) % 5)
  plot for [i=0:nrtt-1] datadir."/net_rtt_cdf.dat" index i using 1:2 with lines \
       lw 2+(rtt_floor && resp(i) == 0) dt 1+((rtt_closed >> i) & 1) \
       lc rgb colour(i) title columnheader(1)
  unset logscale
  set yrange [*:*]
}
