// Validates KEDA objects (ScaledObject, TriggerAuthentication) read as JSON from stdin: an array of
// objects. Two checks, both from @kubernetes-models/keda (npm), which is generated from KEDA's CRDs:
// its validators (types, required fields, enums), and no field the CRD does not declare (the
// validators let unknown fields through; the API server would drop them silently, so a misspelt
// field would just not apply), read from the package's declarations of each type.
// Prints one line per problem; exits 1 if there is any.
//   node scripts/k8s_keda.mjs NODE_MODULES_DIR < objects.json
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const typesDir = path.join(process.argv[2], "@kubernetes-models/keda/keda.sh/v1alpha1");
const keda = await import(pathToFileURL(path.join(typesDir, "index.js")).href);

// The fields of a type (a `.d.ts` in the package's folder): name -> the declaration file of the
// field's type when it is one of KEDA's own, or null (a scalar, a string map, a Kubernetes type).
const fieldsCache = new Map();
function fields(file) {
  if (fieldsCache.has(file)) return fieldsCache.get(file);
  const text = readFileSync(path.join(typesDir, file), "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ (I\w+) \} from "\.\/(\w+)\.js";$/gm)) imports.set(m[1], `${m[2]}.d.ts`);
  const alias = text.match(/^export type I\w+ = (I\w+);$/m);
  let result;
  if (alias && imports.has(alias[1])) {
    result = fields(imports.get(alias[1]));
  } else {
    const body = text.match(/^export interface I\w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}$/m);
    if (!body) throw new Error(`no interface in ${file}`);
    result = new Map();
    for (const m of body[1].matchAll(/^ {4}"(\w+)"\??: (.*)$/gm)) {
      const type = m[2].replace(/^Array<(.*)>;?$/, "$1").replace(/;$/, "");
      result.set(m[1], imports.get(type) ?? null);
    }
  }
  fieldsCache.set(file, result);
  return result;
}

function unknownFields(value, file, where, problems) {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, file, `${where}[${i}]`, problems));
    return;
  }
  const known = fields(file);
  for (const [key, child] of Object.entries(value)) {
    if (!known.has(key)) {
      problems.push(`${where}.${key}: not a field of ${file.replace(".d.ts", "")} (known: ${[...known.keys()].join(", ")})`);
    } else if (known.get(key)) {
      unknownFields(child, known.get(key), `${where}.${key}`, problems);
    }
  }
}

const kinds = { ScaledObject: "ScaledObjectSpec.d.ts", TriggerAuthentication: "TriggerAuthenticationSpec.d.ts" };
const objects = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  if (object.apiVersion !== "keda.sh/v1alpha1" || !(object.kind in kinds)) {
    problems.push(`${name}: ${object.apiVersion} ${object.kind} is not a KEDA kind this check knows`);
    continue;
  }
  try {
    new keda[object.kind](object).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
  for (const key of Object.keys(object)) {
    if (!["apiVersion", "kind", "metadata", "spec"].includes(key)) problems.push(`${name}: unknown top-level field ${key}`);
  }
  unknownFields(object.spec ?? {}, kinds[object.kind], `${name} spec`, problems);
}
for (const p of problems) console.log(p);
console.log(`KEDA: ${objects.length} objects checked, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
