import { randomBytes, timingSafeEqual } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { logger } from '@libp2p/logger'
import { HttpError, readJsonBody } from '../../utils/http-body.ts'
import type { RouteTable, ServiceModuleDefinition } from '../module.ts'

const log = logger('opencloud:dashboard')

/** Where the page's files are: beside this file in src/ and, copied by `npm run build`, in dist/ */
const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url))

/** How long a link `dashboard` prints logs in: long enough to open it, short enough that one left in a terminal's scrollback is dead */
export const LINK_TTL_MS = 2 * 60_000

/** Links waiting at once; each `dashboard` makes one, so more means something is asking in a loop */
const MAX_LINKS = 32

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png'
}

/**
 * The page may run only its own files and talk only to this API: a value
 * the node shows (an object's name, a peer's offer) can never become script
 */
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/**
 * A one-time login code of `dashboard`: the bearer token of the request
 * that made it, given once to the page that brings the code back
 */
interface Link {
  token: string
  expires: number
}

/**
 * The dashboard module: the operator's pages at the control API's address
 * (GET /, GET /dashboard/<file>), static files that hold nothing of the
 * node; everything they show comes from the token-protected API, which the
 * page calls with the token typed into its login form or given for a
 * one-time link (POST /v1/dashboard/link, which `npx opencloud-node
 * dashboard` asks for and prints).
 */
export const dashboardModule: ServiceModuleDefinition = {
  name: 'dashboard',
  create: async () => {
    const links = new Map<string, Link>()
    const files = await pageFiles()
    const serve = (file: string): RouteTable[string] => async ({ res }) => {
      if (!files.includes(file)) {
        throw new HttpError(500, `the dashboard's files are missing from ${PAGE_DIR}: reinstall opencloud-node (npm run build copies them there)`)
      }
      const bytes = await readFile(PAGE_DIR + file)
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': bytes.length,
        'content-security-policy': CSP,
        // the page changes with the node's version: never an old app.js against a new API
        'cache-control': 'no-cache'
      })
      res.end(bytes)
    }
    const pages: RouteTable = {
      'GET /': serve('index.html'),
      'GET /favicon.ico': async ({ res }) => { res.writeHead(204).end() },
      'POST /v1/dashboard/session': async ({ req, json }) => {
        const body = await readJsonBody(req, 'send JSON: {"code": "<the code in the link npx opencloud-node dashboard printed>"}', 1024)
        const code = typeof body.code === 'string' ? body.code : ''
        const now = Date.now()
        let found: Link | undefined
        for (const [key, link] of links) {
          if (link.expires <= now) {
            links.delete(key)
          } else if (key.length === code.length && timingSafeEqual(Buffer.from(key), Buffer.from(code))) {
            found = link
            links.delete(key)
          }
        }
        if (found == null) {
          throw new HttpError(401, 'this login link is used, expired or wrong: run npx opencloud-node dashboard for a new one, or log in with the token in api.token')
        }
        json(200, { token: found.token })
      }
    }
    for (const file of files) {
      pages[`GET /dashboard/${file}`] = serve(file)
    }
    return {
      pages,
      routes: {
        'POST /v1/dashboard/link': async ({ req, json }) => {
          if (links.size >= MAX_LINKS) {
            const oldest = links.keys().next().value
            if (oldest != null) links.delete(oldest)
          }
          const code = randomBytes(24).toString('base64url')
          const token = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '')
          links.set(code, { token, expires: Date.now() + LINK_TTL_MS })
          log('a one-time login link was made')
          json(200, { path: `/#code=${code}`, expiresInSeconds: LINK_TTL_MS / 1000 })
        }
      }
    }
  }
}

/**
 * The page's files by name: only these are served, so no path a request
 * names reaches the disk. Missing files (a broken install) leave the node
 * running without its pages rather than not starting.
 */
async function pageFiles (): Promise<string[]> {
  try {
    return (await readdir(PAGE_DIR)).filter(n => TYPES[extname(n)] != null)
  } catch (err: any) {
    log.error('the dashboard\'s files are missing from %s - %e', PAGE_DIR, err)
    return []
  }
}
