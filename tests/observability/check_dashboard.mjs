// Type-checks a Grafana dashboard JSON against Grafana's own types from @grafana/schema (pinned
// in package-lock.json): the dashboard as a whole against `Dashboard` (the JSON model Grafana
// imports), and each panel's `options` and `fieldConfig.defaults.custom` against the types of
// its panel plugin (stat, bargauge, timeseries). The JSON is pasted as object literals into a
// TypeScript source compiled in memory with `strict`, so a missing required field, a field of
// the wrong type, a value outside an enum or an unknown property is a compile error.
//
//   node check_dashboard.mjs DASHBOARD.json   exit 0 and "ok ..." when it checks, 1 and the errors otherwise

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PANELCFG = '@grafana/schema/dist/esm/raw/composable';
// Panel types this checker knows: the plugin's Options type, and its FieldConfig type when it has one.
const PANEL_TYPES = {
  stat: { module: `${PANELCFG}/stat/panelcfg/x/StatPanelCfg_types.gen`, fieldConfig: false },
  bargauge: { module: `${PANELCFG}/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen`, fieldConfig: false },
  timeseries: { module: `${PANELCFG}/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen`, fieldConfig: true },
};

function fail(message) {
  console.error(`check_dashboard: ${message}`);
  process.exit(1);
}

const file = process.argv[2];
if (!file) fail('usage: node check_dashboard.mjs DASHBOARD.json');
let dashboard;
try {
  dashboard = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (e) {
  fail(`${file}: ${e.message}`);
}

const lit = (value) => JSON.stringify(value, null, 2);
const lines = [
  "import type { Dashboard } from '@grafana/schema';",
  ...Object.entries(PANEL_TYPES).map(([type, t]) =>
    `import type { Options as ${type}_Options${t.fieldConfig ? `, FieldConfig as ${type}_FieldConfig` : ''} } from '${t.module}';`),
  // Grafana's types use TypeScript enums (BigValueColorMode.Background = "background"); JSON holds
  // their values. Plain<T> is T with every string enum replaced by the union of its values.
  'type Plain<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T :',
  '  T extends ReadonlyArray<infer U> ? Array<Plain<U>> : T extends object ? { [K in keyof T]: Plain<T[K]> } : T;',
  `export const dashboard: Plain<Dashboard> = ${lit(dashboard)};`,
];
const panels = Array.isArray(dashboard.panels) ? dashboard.panels : [];
panels.forEach((panel, i) => {
  const where = `panels[${i}] (${JSON.stringify(panel?.title ?? '')})`;
  const known = PANEL_TYPES[panel?.type];
  if (!known) fail(`${where}: panel type ${JSON.stringify(panel?.type)} is not one this checker has Grafana's types for (${Object.keys(PANEL_TYPES).join(', ')})`);
  lines.push(`// ${where}`);
  lines.push(`export const panel_${i}_options: Plain<${panel.type}_Options> = ${lit(panel.options)};`);
  const custom = panel.fieldConfig?.defaults?.custom;
  if (custom !== undefined) {
    if (!known.fieldConfig) fail(`${where}: fieldConfig.defaults.custom is set, but a ${panel.type} panel has no custom field config`);
    lines.push(`export const panel_${i}_custom: Plain<${panel.type}_FieldConfig> = ${lit(custom)};`);
  }
});
const source = lines.join('\n') + '\n';

// The generated source lives, in memory only, in this folder: its imports resolve to node_modules here.
const virtual = path.join(HERE, '__dashboard_check__.ts');
const options = {
  strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler, skipLibCheck: true, types: [],
};
const host = ts.createCompilerHost(options);
const { getSourceFile, fileExists, readFile } = host;
host.getSourceFile = (name, lang, ...rest) =>
  path.resolve(name) === virtual ? ts.createSourceFile(name, source, lang, true) : getSourceFile.call(host, name, lang, ...rest);
host.fileExists = (name) => path.resolve(name) === virtual || fileExists.call(host, name);
host.readFile = (name) => (path.resolve(name) === virtual ? source : readFile.call(host, name));

const program = ts.createProgram([virtual], options, host);
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length) {
  const sourceLines = source.split('\n');
  for (const d of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n  ');
    if (d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      // The nearest "// panels[i]" comment above names the panel.
      let owner = 'dashboard';
      for (let l = line; l >= 0; l--) {
        if (sourceLines[l].startsWith('// panels[')) { owner = sourceLines[l].slice(3); break; }
      }
      console.error(`${file}: ${owner}: ${message}\n  at: ${sourceLines[line].trim()}`);
    } else {
      console.error(`${file}: ${message}`);
    }
  }
  process.exit(1);
}
console.log(`ok ${file}: the dashboard and its ${panels.length} panels check against @grafana/schema ${
  JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules/@grafana/schema/package.json'), 'utf8')).version}`);
