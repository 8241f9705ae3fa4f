import { defineConfig } from "vitest/config";

// `npm run dev` proxies the API to a running `viscnn serve` (VISCNN_API, default port 8765).
export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: { proxy: { "/api": process.env.VISCNN_API ?? "http://127.0.0.1:8765" } },
  test: { environment: "happy-dom", include: ["src/**/*.test.ts"] },
});
