/**
 * GLSL for the 3D graph. Nodes: point sprites sized in world units (perspective), round, soft-edged,
 * optionally drawn as rings (selection). Edges: one instanced quad per edge, widened in screen space so
 * its width is in pixels whatever the distance (WebGL lines are always 1 px).
 */
export const NODE_VERTEX = /* glsl */ `
attribute float aSize; attribute float aAlpha; attribute vec3 aColor;
uniform float uScale;
varying vec3 vColor; varying float vAlpha;
void main() {
  vec4 mv = modelViewMatrix * vec4(position, 1.0);
  gl_Position = projectionMatrix * mv;
  gl_PointSize = clamp(aSize * uScale / -mv.z, 1.5, 64.0);
  vColor = aColor; vAlpha = aAlpha;
}`;
export const NODE_FRAGMENT = /* glsl */ `
uniform float uRing;
varying vec3 vColor; varying float vAlpha;
void main() {
  vec2 c = gl_PointCoord * 2.0 - 1.0;
  float r = dot(c, c);
  if (r > 1.0 || r < uRing) discard;
  gl_FragColor = vec4(vColor, vAlpha * smoothstep(1.0, 0.7, r));
}`;
export const EDGE_VERTEX = /* glsl */ `
attribute vec2 corner;
attribute vec3 iStart; attribute vec3 iEnd; attribute vec4 iColor; attribute float iWidth;
uniform vec2 uResolution;
varying vec4 vColor;
void main() {
  vec4 a = projectionMatrix * modelViewMatrix * vec4(iStart, 1.0);
  vec4 b = projectionMatrix * modelViewMatrix * vec4(iEnd, 1.0);
  vec4 p = corner.x < 0.5 ? a : b;
  vec2 d = (b.xy / b.w - a.xy / a.w) * uResolution;
  vec2 dir = length(d) > 1e-6 ? normalize(d) : vec2(1.0, 0.0);
  p.xy += vec2(-dir.y, dir.x) * corner.y * iWidth / uResolution * p.w;
  vColor = iColor;
  gl_Position = p;
}`;
export const EDGE_FRAGMENT = /* glsl */ `
varying vec4 vColor;
void main() { gl_FragColor = vColor; }`;
