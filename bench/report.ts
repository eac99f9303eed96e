/** Rows of the results table, targets, and how they are printed. */
import { type Figure, fmt } from "./stats.js";

export interface Target {
  /** The figure's median must be at least / at most this. */
  atLeast?: number;
  atMost?: number;
  text: string;
}

export interface Row {
  scenario: string;
  name: string;
  figure: Figure;
  target?: Target;
  met?: boolean;
  note?: string;
}

export class Report {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];

  add(scenario: string, name: string, figure: Figure, target?: Target, note?: string): Row {
    const row: Row = { scenario, name, figure, target, note };
    if (target) {
      row.met =
        (target.atLeast === undefined || figure.median >= target.atLeast) &&
        (target.atMost === undefined || figure.median <= target.atMost);
    }
    this.rows.push(row);
    return row;
  }

  note(text: string): void {
    this.notes.push(text);
    console.log(`  note: ${text}`);
  }

  /** The same table in Markdown (results.json keeps it, for the README's Performance section). */
  markdown(): string {
    const lines = [
      "| Scenario | Figure | Median | Spread (min - max) | Runs | Target |",
      "| --- | --- | ---: | ---: | ---: | --- |",
    ];
    for (const r of this.rows) {
      const spread =
        r.figure.runs.length > 1
          ? `${fmt(r.figure.min, r.figure.unit)} - ${fmt(r.figure.max, r.figure.unit)}`
          : "";
      const target = r.target ? `${r.target.text}: ${r.met ? "met" : "**missed**"}` : "";
      lines.push(
        `| ${r.scenario} | ${r.name.trim()} | ${fmt(r.figure.median, r.figure.unit)} | ${spread} | ${r.figure.runs.length} | ${target} |`,
      );
    }
    return lines.join("\n");
  }

  /** A plain-text table, as printed at the end of a run. */
  table(): string {
    const header = ["", "figure", "median", "spread (min-max)", "runs", "target", ""];
    const lines = this.rows.map((r) => [
      r.scenario,
      r.name,
      fmt(r.figure.median, r.figure.unit),
      r.figure.runs.length > 1
        ? `${fmt(r.figure.min, r.figure.unit)} - ${fmt(r.figure.max, r.figure.unit)}`
        : "",
      String(r.figure.runs.length),
      r.target?.text ?? "",
      r.met === undefined ? "" : r.met ? "met" : "MISSED",
    ]);
    const all = [header, ...lines];
    const widths = header.map((_, c) => Math.max(...all.map((l) => l[c].length)));
    const render = (l: string[]) =>
      l
        .map((cell, c) => (c >= 2 && c <= 4 ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join("  ")
        .trimEnd();
    return [render(header), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(render)].join("\n");
  }
}
