import { defineConfig } from "vite";

// Two static pages, no framework. `base: "./"` keeps every asset URL relative, so the same build
// works from an S3 website, a bucket path or a local static server.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: { input: { shop: "index.html", admin: "admin.html" } },
  },
});
