/**
 * A strict reader of the Prometheus text exposition format (version
 * 0.0.4), for tests of GET /metrics: every line is a HELP, a TYPE or a
 * sample of a family typed before it; names, label sets, escapes and
 * values are checked, and anything else throws with the line's number.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  types: Map<string, string>
  samples: Sample[]
  /** the value of the one sample of `name` whose labels include `labels`; undefined when none */
  value: (name: string, labels?: Record<string, string>) => number | undefined
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

export function parsePrometheus (text: string): Exposition {
  if (!text.endsWith('\n')) {
    throw new Error('the exposition does not end with a line feed')
  }
  const types = new Map<string, string>()
  const helped = new Set<string>()
  const samples: Sample[] = []
  const seen = new Set<string>()
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((line, i) => {
    const where = `line ${i + 1} ("${line.slice(0, 80)}")`
    if (line === '') {
      return
    }
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (m == null) {
        return // a plain comment
      }
      const [, kind, name, rest] = m
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`)
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type`)
        if (types.has(name)) throw new Error(`${where}: a second TYPE for ${name}`)
        types.set(name, rest)
      } else {
        if (helped.has(name)) throw new Error(`${where}: a second HELP for ${name}`)
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: a bad escape in HELP`)
        helped.add(name)
      }
      return
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?[0-9]+)?$/.exec(line)
    if (m == null) throw new Error(`${where}: not a sample`)
    const [, name, , labelText, valueText] = m
    const labels = parseLabels(labelText ?? '', where)
    const value = parseValue(valueText, where)
    const family = familyOf(name, types)
    if (family == null) throw new Error(`${where}: ${name} has no TYPE before it`)
    if (types.get(family) === 'histogram' && name.endsWith('_bucket') && labels.le == null) throw new Error(`${where}: a bucket without le`)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seen.has(key)) throw new Error(`${where}: the same series twice`)
    seen.add(key)
    samples.push({ name, labels, value })
  })
  return {
    types,
    samples,
    value: (name, want = {}) => {
      const found = samples.filter(s => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(want)}`)
      return found[0]?.value
    }
  }
}

function familyOf (name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) {
    return name
  }
  for (const [family, type] of types) {
    if ((SUFFIXES[type] ?? []).some(suffix => suffix !== '' && name === family + suffix)) {
      return family
    }
  }
  return undefined
}

function parseLabels (text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let rest = text
  while (rest !== '') {
    const m = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest)
    if (m == null) throw new Error(`${where}: bad labels at "${rest.slice(0, 40)}"`)
    const [whole, name, raw] = m
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`)
    if (labels[name] != null) throw new Error(`${where}: label ${name} twice`)
    labels[name] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    rest = rest.slice(whole.length)
  }
  return labels
}

function parseValue (text: string, where: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  if (!/^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/.test(text)) throw new Error(`${where}: "${text}" is not a value`)
  return Number(text)
}
