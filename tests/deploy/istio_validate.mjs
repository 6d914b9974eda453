// Validate Istio manifests with @kubernetes-models/istio (npm, pinned in package-lock.json),
// which compiles Istio 1.29.2's crd-all.gen.yaml into:
//   - an ajv validator per kind (the CRD's openAPIV3Schema: types, enums, patterns, ranges,
//     required fields), run through the model's validate();
//   - TypeScript interfaces (I<Kind>), against which each manifest is type-checked as an object
//     literal, so an unknown or misspelled field is an error (kubectl's --validate=strict),
//     which the ajv validators alone do not catch (they keep unknown fields).
//
// Usage: node istio_validate.mjs MANIFESTS.json   (a JSON list of manifest objects)
// Prints a JSON list, one {apiVersion, kind, name, schemaErrors: [..], typeErrors: [..]} per manifest.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const manifests = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

function modulePath(m) {
  const [group, version] = m.apiVersion.split("/");
  return `@kubernetes-models/istio/${group}/${version}/${m.kind}`;
}

const results = [];
for (const m of manifests) {
  const result = { apiVersion: m.apiVersion, kind: m.kind, name: m.metadata?.name, schemaErrors: [], typeErrors: [] };
  try {
    const mod = await import(modulePath(m));
    const Model = mod[m.kind];
    new Model(m).validate();
  } catch (e) {
    result.schemaErrors.push(String(e.message || e));
  }
  results.push(result);
}

// One virtual source file per manifest, placed beside this script so that module resolution
// finds ./node_modules.
const files = new Map();
manifests.forEach((m, i) => {
  const name = path.join(here, `__manifest_${i}__.ts`);
  files.set(name, `import type { I${m.kind} } from "${modulePath(m)}";\n` +
    `export const manifest: I${m.kind} = ${JSON.stringify(m, null, 2)};\n`);
});
const options = {
  strict: true, noEmit: true, skipLibCheck: true, types: [],
  target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
};
const host = ts.createCompilerHost(options);
const { getSourceFile, fileExists, readFile } = host;
host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
host.readFile = (f) => files.get(f) ?? readFile.call(host, f);
host.getSourceFile = (f, lang, onError, create) =>
  files.has(f) ? ts.createSourceFile(f, files.get(f), lang, true) : getSourceFile.call(host, f, lang, onError, create);
const program = ts.createProgram([...files.keys()], options, host);
const names = [...files.keys()];
for (const d of ts.getPreEmitDiagnostics(program)) {
  const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  const i = d.file ? names.indexOf(d.file.fileName) : -1;
  if (i < 0) {
    for (const r of results) r.typeErrors.push(`(global) ${text}`);
    continue;
  }
  const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
  results[i].typeErrors.push(`line ${line + 1}: ${text}`);
}
process.stdout.write(JSON.stringify(results, null, 1) + "\n");
