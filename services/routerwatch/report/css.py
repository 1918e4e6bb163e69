"""The report page's style sheet, inlined into the page's ``<style>`` element."""

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: %(font)s; margin: 0; background: #f6f7f9; color: #1d2430; line-height: 1.45; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
header.page { background: #1d2430; color: #fff; padding: 20px 28px; }
header.page .inner { max-width: 1240px; margin: 0 auto; }
header.page h1 { margin: 0 0 6px; font-size: 24px; font-weight: 650; }
header.page .meta { font-size: 15px; opacity: .92; }
header.page .meta span { margin-right: 22px; white-space: nowrap; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 2px solid #dde1e7; padding-bottom: 4px; }
h3 { font-size: 15.5px; margin: 22px 0 6px; }
section.card, figure.plot { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 14px 18px; margin: 14px 0; }
figure.plot { margin: 16px 0; }
figure.plot figcaption { font-size: 13.5px; color: #4a5464; margin-top: 6px; }
svg { max-width: 100%%; height: auto; display: block; font-family: %(font)s; }
dl.vocab { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; font-size: 14px; }
dl.vocab dt { font-weight: 650; }
dl.vocab dd { margin: 0; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0 0; }
.kpi { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 16px; min-width: 170px; }
.kpi .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi .l { font-size: 12.5px; color: #4a5464; }
nav.toc { font-size: 13.5px; columns: 3; margin: 8px 0 0; }
nav.toc a { color: #0b5cad; text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.table-wrap { overflow-x: auto; }
/* The per-canary table has ~18 columns: its text cells wrap (long errors anywhere) so it fits the page. */
.table-wrap.fit td { white-space: normal; overflow-wrap: anywhere; min-width: 4.5em; }
.table-wrap.fit td.num { white-space: nowrap; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e6e9ee; text-align: left; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; white-space: normal; vertical-align: bottom; max-width: 11em; }
th small { font-weight: 400; color: #5b6575; }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tr.warn td { background: #fff3cd !important; }
tr.flag td { background: #fde8e6 !important; }
svg.sparkline { display: inline-block; vertical-align: middle; }
.spark-value { font-size: 12px; color: #1d2430; margin-left: 6px; vertical-align: middle; font-variant-numeric: tabular-nums; }
.nodata { color: #6b7585; font-style: italic; margin: 6px 0; }
.note { color: #4a5464; font-size: 13px; margin: 4px 0; }
.warning { background: #fff3cd; border: 1px solid #e0b84c; border-left: 5px solid #d39e00; border-radius: 4px;
           padding: 8px 12px; margin: 8px 0; font-size: 14px; }
details > summary { cursor: pointer; color: #0b5cad; font-size: 13.5px; margin: 4px 0; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
footer { color: #6b7585; font-size: 12.5px; margin-top: 40px; }
""" % {"font": FONT}
