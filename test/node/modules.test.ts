import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenCloudNode } from '../../src/node/opencloud-node.ts'
import { MODULES, MODULE_SECTIONS } from '../../src/node/modules.ts'
import { ApiServer } from '../../src/node/api/api-server.ts'
import { validateConfig, DEFAULT_CONFIG } from '../../src/node/config.ts'
import { ConfigError, objectSection, stringField, type ConfigSection } from '../../src/services/config-section.ts'
import { Units } from '../../src/protocols/units.ts'
import { Status } from '../../src/protocols/rpc/status.ts'
import { bodyFromBytes } from '../../src/protocols/rpc/body.ts'
import { addrOf, startTestNode, tempDir, testConfig, type TestNode } from '../helpers/nodes.ts'
import type { ServiceModuleDefinition } from '../../src/services/module.ts'

/** The engine of a module of this test's own: it greets */
class Greeter {
  started = false
  readonly greeting: string
  constructor (greeting: string) {
    this.greeting = greeting
  }
  greet (name: string): string {
    if (name === 'nobody') {
      throw new NobodyError('there is nobody to greet: give a name')
    }
    return `${this.greeting}, ${name}`
  }
}

class NobodyError extends Error {
  override name = 'NobodyError'
}

/** config.json's "greeter": { greeting } */
const greeterSection: ConfigSection<{ greeting: string }> = {
  key: 'greeter',
  defaults: { greeting: 'hello' },
  validate: (raw, path) => objectSection(raw, path, greeterSection.defaults, {
    greeting: stringField(value => {
      if (value === '') {
        throw new ConfigError('must not be empty')
      }
    })
  })
}

/**
 * A new service as DESIGN.md says one is added: an engine, a module, and a
 * line in the node's module list, with no edit to the node, the API server
 * or the config loader. The module brings an RPC service, a route, an error
 * status, a config section and its start and stop.
 */
const greeterModule: ServiceModuleDefinition = {
  name: 'greeter',
  config: [greeterSection],
  create: ({ section }) => {
    const greeter = new Greeter(section(greeterSection).greeting)
    return {
      services: [{
        name: 'greeter',
        version: '1.0.0',
        description: 'greets the body',
        methods: {
          greet: {
            description: 'a greeting for the name in the body',
            unit: Units.CALL,
            handle: async ({ body }) => {
              const chunks: Uint8Array[] = []
              for await (const chunk of body) {
                chunks.push(chunk)
              }
              return { json: { greeting: greeter.greet(Buffer.concat(chunks).toString()) } }
            }
          }
        }
      }],
      routes: {
        'GET /v1/greeter': async ({ url, json }) => { json(200, { greeting: greeter.greet(url.searchParams.get('name') ?? 'nobody'), started: greeter.started }) }
      },
      errors: [[NobodyError, 422]],
      engine: greeter,
      start: async () => { greeter.started = true },
      stop: async () => { greeter.started = false }
    }
  }
}

const WITH_GREETER = [...MODULES, greeterModule]
const SECTIONS = [...MODULE_SECTIONS, greeterSection]

describe('a module of its own, added by one line in the module list', () => {
  let dir: { path: string, cleanup: () => Promise<void> }
  let node: OpenCloudNode
  let caller: TestNode
  let api: ApiServer
  const token = 'test-token'

  before(async () => {
    dir = await tempDir()
    // config.json as an operator writes it, read by the node's own loader
    await writeFile(join(dir.path, 'config.json'), JSON.stringify({ ...testConfig(), greeter: { greeting: 'good morning' } }))
    node = await OpenCloudNode.create({ dataDir: dir.path, serviceModules: WITH_GREETER, sections: SECTIONS })
    await node.start()
    api = new ApiServer(node, { host: '127.0.0.1', port: 0, token })
    await api.start()
    caller = await startTestNode()
  })

  after(async () => {
    await api?.stop()
    await node?.stop()
    await caller?.destroy()
    await dir?.cleanup()
  })

  it('serves its RPC service with the greeting from its config section, and lists it', async () => {
    const response = await caller.node.call(addrOf(node), { service: 'greeter', method: 'greet', body: bodyFromBytes(new TextEncoder().encode('Ada')) })
    assert.equal(response.status, Status.OK)
    assert.deepEqual(JSON.parse(Buffer.from(await response.body.bytes()).toString()), { greeting: 'good morning, Ada' })
    assert.ok(node.info().services.includes('greeter'), JSON.stringify(node.info().services))
  })

  it('answers its route on the control API, was started, and its error has its own status', async () => {
    assert.ok(api.routeNames().includes('GET /v1/greeter'))
    const get = async (query: string): Promise<Response> => fetch(`${api.url}/v1/greeter${query}`, { headers: { authorization: `Bearer ${token}` } })
    const ok = await get('?name=Ada')
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), { greeting: 'good morning, Ada', started: true })
    const refused = await get('')
    assert.equal(refused.status, 422)
    assert.match(JSON.stringify(await refused.json()), /there is nobody to greet: give a name/)
  })

  it('has its section checked by the config loader, and is unknown to a node without it', async () => {
    assert.throws(() => validateConfig({ ...structuredClone(DEFAULT_CONFIG), greeter: { greeting: '' } }, SECTIONS), /greeter\.greeting: must not be empty/)
    assert.deepEqual(validateConfig({ ...structuredClone(DEFAULT_CONFIG) }, SECTIONS).greeter, { greeting: 'hello' })
    assert.throws(() => validateConfig({ ...structuredClone(DEFAULT_CONFIG), greeter: { greeting: 'hi' } }), /greeter/)
  })
})
