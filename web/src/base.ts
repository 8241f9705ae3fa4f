/** Where the page's server is: the folder the page was loaded from, so it works at / and under a proxy path too. */

/**
 * The API's base for a page at `pathname`: "" at the site's root, "/user/ada/proxy/8123" when a notebook
 * server's proxy serves the page at /user/ada/proxy/8123/ (every API path is then under it).
 */
export function pageBase(pathname: string): string {
  const folder = pathname.slice(0, pathname.lastIndexOf("/") + 1);
  return folder.replace(/\/+$/, "");
}
