// The topology graph: routers (coloured by role), IGP links and eBGP neighbours, drawn as SVG with a small
// deterministic force layout (same topology, same picture).

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 800;
const HEIGHT = 360;
const MARGIN = 40;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// {nodes: [{id, label, sub, kind}], edges: [[id, id, label]]} from GET /api/v1/topology
export function graphOf(topology) {
  const nodes = topology.routers.map((r) => ({ id: r.name, label: r.name, sub: `${r.role} · AS${r.asn}`,
    kind: `role-${r.role}`, router: r.name }));
  const known = new Set(nodes.map((n) => n.id));
  const edges = new Map();
  for (const link of topology.links) {
    if (!known.has(link.local) || !known.has(link.remote)) continue;
    const key = [link.local, link.remote].sort().join("\u0000");
    if (!edges.has(key)) edges.set(key, [link.local, link.remote, ""]);
  }
  for (const n of topology.neighbors || []) {
    if (!known.has(n.router)) continue;
    const id = `AS${n.asn}`;
    if (!nodes.some((node) => node.id === id)) {
      nodes.push({ id, label: id, sub: n.relationship, kind: "role-external" });
    }
    edges.set(`${n.router}\u0000${id}\u0000${n.interface}`, [n.router, id, n.interface]);
  }
  nodes.sort((a, b) => a.id.localeCompare(b.id));
  return { nodes, edges: [...edges.values()] };
}

function layout(nodes, edges) {
  const n = nodes.length;
  const pos = new Map(nodes.map((node, i) => [node.id, {
    x: Math.cos((2 * Math.PI * i) / Math.max(n, 1)), y: Math.sin((2 * Math.PI * i) / Math.max(n, 1)) }]));
  const k = 1 / Math.sqrt(Math.max(n, 1));
  let temperature = 0.2;
  for (let step = 0; step < 300; step++) {
    const force = new Map(nodes.map((node) => [node.id, { x: 0, y: 0 }]));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const a = pos.get(nodes[i].id), b = pos.get(nodes[j].id);
        const dx = a.x - b.x, dy = a.y - b.y, d = Math.max(Math.hypot(dx, dy), 1e-3);
        const push = (k * k) / d;
        const fa = force.get(nodes[i].id), fb = force.get(nodes[j].id);
        fa.x += (dx / d) * push; fa.y += (dy / d) * push;
        fb.x -= (dx / d) * push; fb.y -= (dy / d) * push;
      }
    }
    for (const [u, v] of edges) {
      const a = pos.get(u), b = pos.get(v);
      const dx = a.x - b.x, dy = a.y - b.y, d = Math.max(Math.hypot(dx, dy), 1e-3);
      const pull = (d * d) / k;
      const fa = force.get(u), fb = force.get(v);
      fa.x -= (dx / d) * pull; fa.y -= (dy / d) * pull;
      fb.x += (dx / d) * pull; fb.y += (dy / d) * pull;
    }
    for (const node of nodes) {
      const p = pos.get(node.id), f = force.get(node.id), len = Math.max(Math.hypot(f.x, f.y), 1e-9);
      p.x += (f.x / len) * Math.min(len, temperature);
      p.y += (f.y / len) * Math.min(len, temperature);
    }
    temperature *= 0.98;
  }
  // fit into the view box
  const xs = [...pos.values()].map((p) => p.x), ys = [...pos.values()].map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (WIDTH - 2 * MARGIN) / Math.max(x1 - x0, 1e-6), sy = (HEIGHT - 2 * MARGIN) / Math.max(y1 - y0, 1e-6);
  for (const p of pos.values()) {
    p.x = n === 1 ? WIDTH / 2 : MARGIN + (p.x - x0) * sx;
    p.y = n === 1 ? HEIGHT / 2 : MARGIN + (p.y - y0) * sy;
  }
  return pos;
}

// Draw into the <svg>; onSelect(router) when a router is clicked.
export function drawGraph(root, topology, onSelect) {
  const { nodes, edges } = graphOf(topology);
  root.replaceChildren();
  if (!nodes.length) {
    root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "muted" },
      "no router learned yet"));
    return;
  }
  const pos = layout(nodes, edges);
  for (const [u, v, label] of edges) {
    const a = pos.get(u), b = pos.get(v);
    const line = svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: "edge" });
    line.append(svg("title", {}, label ? `${u} ${label} — ${v}` : `${u} — ${v}`));
    root.append(line);
  }
  for (const node of nodes) {
    const p = pos.get(node.id);
    const group = svg("g", { class: `node ${node.kind}`, transform: `translate(${p.x},${p.y})`,
      "data-node": node.id });
    if (node.router) {
      group.setAttribute("data-router", node.router);
      group.setAttribute("tabindex", "0");
      group.addEventListener("click", () => onSelect(node.router));
      group.addEventListener("keydown", (e) => { if (e.key === "Enter") onSelect(node.router); });
    }
    group.append(svg("circle", { r: 18 }), svg("text", { class: "label", dy: 5 }, node.label),
      svg("text", { class: "sub", dy: 32 }, node.sub));
    root.append(group);
  }
}
