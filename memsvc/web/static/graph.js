// memsvc admin: interactive drawing of a cube's link graph (cytoscape.js + fcose, vendored).
// Data comes from the admin JSON endpoint; nodes load on demand (limit, expand, load more).
"use strict";
(function () {
  var box = document.getElementById("graph");
  if (!box || typeof cytoscape === "undefined") return;
  var api = box.getAttribute("data-api");
  var $ = function (id) { return document.getElementById(id); };
  var LAYER_COLORS = { core: "#e39b2d", semantic: "#4a74d9", episodic: "#9a5cd6" };
  var PALETTE = ["#4a74d9", "#e39b2d", "#2f9e6e", "#d2504f", "#9a5cd6", "#1e9bb0",
                 "#b8862b", "#d35fa0", "#6b7a8f", "#7fa03a"];
  var hasFcose = typeof cytoscapeFcose !== "undefined";

  var state = {
    center: $("center").value.trim(),
    depth: parseInt($("depth").value, 10),
    limit: parseInt($("limit").value, 10),
    maxLimit: parseInt($("limit").getAttribute("max"), 10),
    colorBy: "layer",
    hiddenRelations: {},
    relations: [],
    memoryCount: 0,
    truncated: false,
    kindColors: {},
    communityColors: {},
    selected: null,
  };

  var cy = cytoscape({
    container: box,
    minZoom: 0.05,
    maxZoom: 4,
    textureOnViewport: true,
    hideEdgesOnViewport: true,
    style: [
      { selector: "node", style: {
          "background-color": "data(color)", "label": "data(label)", "font-size": 10,
          "min-zoomed-font-size": 7, "text-valign": "bottom", "text-margin-y": 3,
          "text-wrap": "ellipsis", "text-max-width": 140, "color": "#2a3040",
          "width": "data(size)", "height": "data(size)", "border-width": 1, "border-color": "#ffffff" } },
      { selector: "node.center", style: { "border-width": 3, "border-color": "#1d2330" } },
      { selector: "node:selected", style: { "border-width": 4, "border-color": "#1d2330", "z-index": 10 } },
      { selector: "edge", style: {
          "width": "mapData(weight, 0, 1, 0.6, 3)", "line-color": "#b7bfcf", "curve-style": "straight",
          "target-arrow-shape": "triangle", "target-arrow-color": "#b7bfcf", "arrow-scale": 0.7,
          "label": "data(relation)", "font-size": 8, "min-zoomed-font-size": 8, "color": "#5a6275",
          "text-rotation": "autorotate", "text-background-color": "#ffffff", "text-background-opacity": 0.8,
          "text-background-padding": 1 } },
      { selector: "edge.nolabel", style: { "label": "" } },
      // Crowded views: labels only once zoomed in far enough to read them.
      { selector: "node.crowded", style: { "min-zoomed-font-size": 16 } },
      { selector: "edge.crowded", style: { "min-zoomed-font-size": 14 } },
      { selector: ".hidden", style: { "display": "none" } },
      { selector: ".faded", style: { "opacity": 0.15 } },
      { selector: "edge.near", style: { "line-color": "#4a74d9", "target-arrow-color": "#4a74d9" } },
    ],
  });
  window.memsvcGraph = cy;

  function colorFor(d) {
    if (state.colorBy === "layer") return LAYER_COLORS[d.layer] || "#6b7a8f";
    var key = state.colorBy === "kind" ? d.kind : (d.community === null ? "none" : "c" + d.community);
    var table = state.colorBy === "kind" ? state.kindColors : state.communityColors;
    if (!(key in table)) {
      var n = Object.keys(table).length;
      table[key] = key === "none" ? "#9aa3b8" : PALETTE[n % PALETTE.length];
    }
    return table[key];
  }

  // Size by PageRank importance relative to the most important node loaded; smaller nodes
  // and zoom-dependent labels once the view is crowded.
  function resize() {
    var top = 0;
    var crowded = cy.nodes().length > 400;
    var base = crowded ? 6 : 12;
    var span = crowded ? 16 : 30;
    cy.nodes().forEach(function (n) { top = Math.max(top, n.data("importance") || 0); });
    cy.batch(function () {
      cy.nodes().forEach(function (n) {
        var rel = top > 0 ? (n.data("importance") || 0) / top : 0;
        n.data("size", base + span * Math.sqrt(rel));
      });
      cy.elements().toggleClass("crowded", crowded);
    });
  }

  function recolor() {
    cy.batch(function () {
      cy.nodes().forEach(function (n) { n.data("color", colorFor(n.data())); });
    });
    var legend = $("legend");
    legend.textContent = "";
    var entries = state.colorBy === "layer" ? LAYER_COLORS
      : state.colorBy === "kind" ? state.kindColors : state.communityColors;
    Object.keys(entries).sort().forEach(function (k) {
      var span = document.createElement("span");
      var dot = document.createElement("i");
      dot.style.background = entries[k];
      span.appendChild(dot);
      span.appendChild(document.createTextNode(k));
      legend.appendChild(span);
    });
  }

  function renderRelations() {
    var fs = $("relations");
    fs.querySelectorAll("label, p").forEach(function (el) { el.remove(); });
    if (!state.relations.length) {
      var p = document.createElement("p");
      p.className = "muted small";
      p.textContent = "no links in this cube yet";
      fs.appendChild(p);
      return;
    }
    state.relations.forEach(function (rel) {
      var label = document.createElement("label");
      var cb = document.createElement("input");
      cb.type = "checkbox";
      cb.checked = !state.hiddenRelations[rel];
      cb.setAttribute("data-relation", rel);
      cb.addEventListener("change", function () {
        state.hiddenRelations[rel] = !cb.checked;
        applyRelationFilter();
      });
      label.appendChild(cb);
      label.appendChild(document.createTextNode(rel));
      fs.appendChild(label);
    });
  }

  function applyRelationFilter() {
    cy.batch(function () {
      cy.edges().forEach(function (e) {
        e.toggleClass("hidden", !!state.hiddenRelations[e.data("relation")]);
      });
    });
  }

  function status() {
    var text = cy.nodes().length + " nodes · " + cy.edges().length + " links shown · " +
      state.memoryCount + " active memories in the cube";
    if (state.truncated) text += " · more available (raise the limit or expand nodes)";
    $("graph-status").textContent = text;
  }

  function toElements(data) {
    var els = [];
    data.nodes.forEach(function (n) {
      if (cy.getElementById(n.id).nonempty()) return;
      els.push({ group: "nodes", data: {
        id: n.id, label: n.label, content: n.content, kind: n.kind, layer: n.layer,
        tags: n.tags, degree: n.degree, importance: n.importance, community: n.community,
        size: 12, color: colorFor(n) } });
    });
    data.edges.forEach(function (e) {
      if (cy.getElementById(e.id).nonempty()) return;
      els.push({ group: "edges", data: {
        id: e.id, source: e.source_id, target: e.target_id, relation: e.relation,
        weight: e.weight, reason: e.reason || "" } });
    });
    return els;
  }

  function merge(data) {
    state.memoryCount = data.memory_count;
    state.truncated = data.truncated;
    data.relations.forEach(function (r) {
      if (state.relations.indexOf(r) < 0) state.relations.push(r);
    });
    state.relations.sort();
    var added = cy.add(toElements(data));
    added.edges().forEach(function (e) { e.toggleClass("hidden", !!state.hiddenRelations[e.data("relation")]); });
    if (!$("edge-labels").checked) added.edges().addClass("nolabel");
    renderRelations();
    recolor();
    resize();
    return added;
  }

  function layoutAll(done) {
    box.setAttribute("data-ready", "0");
    var n = cy.nodes().length;
    var opts = hasFcose
      ? { name: "fcose", quality: n > 1200 ? "draft" : "default", randomize: true, animate: false,
          nodeDimensionsIncludeLabels: false, packComponents: true, idealEdgeLength: 70,
          nodeRepulsion: 6000, numIter: n > 2000 ? 1200 : 2500 }
      : { name: "cose", animate: false, numIter: n > 1000 ? 300 : 1000 };
    var layout = cy.layout(opts);
    layout.one("layoutstop", function () {
      cy.fit(undefined, 30);
      box.setAttribute("data-ready", "1");
      if (done) done();
    });
    layout.run();
  }

  function fetchGraph(params) {
    var q = new URLSearchParams();
    if (params.center) q.set("center", params.center);
    q.set("depth", String(params.depth));
    q.set("limit", String(params.limit));
    $("graph-status").textContent = "loading…";
    return fetch(api + "?" + q.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) {
            var err = (body && body.error) || { code: "error", message: r.statusText };
            throw new Error(err.code + ": " + err.message);
          }
          return body;
        });
      })
      .catch(function (e) { $("graph-status").textContent = String(e.message || e); throw e; });
  }

  function load() {
    cy.elements().remove();
    state.kindColors = {};
    state.communityColors = {};
    showPanel(null);
    return fetchGraph(state).then(function (data) {
      merge(data);
      if (state.center) cy.getElementById(state.center).addClass("center");
      layoutAll(status);
      var url = new URL(window.location.href);
      if (state.center) url.searchParams.set("center", state.center); else url.searchParams.delete("center");
      window.history.replaceState(null, "", url.toString());
    });
  }

  function expand(node) {
    var id = node.id();
    return fetchGraph({ center: id, depth: 1, limit: Math.min(state.maxLimit, 200) }).then(function (data) {
      var memCount = state.memoryCount;
      var added = merge(data);
      state.memoryCount = memCount;
      var fresh = added.nodes();
      var p = node.position();
      var r = 60 + 6 * fresh.length;
      fresh.forEach(function (n, i) {
        var a = (2 * Math.PI * i) / Math.max(1, fresh.length);
        n.position({ x: p.x + r * Math.cos(a), y: p.y + r * Math.sin(a) });
      });
      node.data("expanded", true);
      status();
      focus(node);
    });
  }

  function focus(node) {
    cy.elements().removeClass("faded near");
    if (!node) return;
    var hood = node.closedNeighborhood();
    cy.elements().not(hood).addClass("faded");
    hood.edges().addClass("near");
  }

  function showPanel(node) {
    state.selected = node;
    $("np-empty").hidden = !!node;
    $("np-body").hidden = !node;
    if (!node) { focus(null); return; }
    var d = node.data();
    $("np-title").textContent = "Memory " + d.id.slice(0, 8);
    $("np-content").textContent = d.content;
    $("np-kind").textContent = d.kind;
    $("np-layer").textContent = d.layer;
    $("np-importance").textContent = (d.importance || 0).toFixed(4);
    $("np-community").textContent = d.community === null ? "—" : String(d.community);
    $("np-tags").textContent = (d.tags || []).join(", ") || "—";
    $("np-degree").textContent = d.degree + " in this view, " + node.connectedEdges().length + " drawn";
    $("np-open").setAttribute("href", "/admin/memories/" + d.id);
    $("np-expand").disabled = !!d.expanded;
    focus(node);
  }

  cy.on("tap", "node", function (ev) { showPanel(ev.target); });
  cy.on("dbltap", "node", function (ev) { expand(ev.target); });
  cy.on("tap", function (ev) { if (ev.target === cy) showPanel(null); });

  $("np-expand").addEventListener("click", function () { if (state.selected) expand(state.selected); });
  $("np-center").addEventListener("click", function () {
    if (!state.selected) return;
    state.center = state.selected.id();
    $("center").value = state.center;
    load();
  });
  $("color-by").addEventListener("change", function (ev) { state.colorBy = ev.target.value; recolor(); });
  $("edge-labels").addEventListener("change", function (ev) {
    cy.edges().toggleClass("nolabel", !ev.target.checked);
  });
  $("fit").addEventListener("click", function () { cy.fit(undefined, 30); });
  $("reload").addEventListener("submit", function (ev) {
    ev.preventDefault();
    state.center = $("center").value.trim();
    state.depth = parseInt($("depth").value, 10);
    state.limit = Math.max(1, Math.min(state.maxLimit, parseInt($("limit").value, 10) || 300));
    load();
  });
  $("more").addEventListener("click", function () {
    state.limit = Math.min(state.maxLimit, state.limit * 2);
    $("limit").value = state.limit;
    fetchGraph(state).then(function (data) {
      var added = merge(data);
      if (added.nodes().length) layoutAll(status); else status();
    });
  });

  load();
})();
