// The API's OpenAPI 3 description, served at GET /openapi.json. Kept beside the routes it describes;
// the job request's setting fields come from request_fields() (openapi.cpp), so a new field shows here.
#pragma once

#include <nlohmann/json.hpp>

#include "serve_options.hpp"
#include "stylize/request.hpp"

namespace stylize::serve {

// kOpenApi with JobRequest's properties completed: one per request field, with its default, and
// size and iterations bounded by this server's limits (what it answers 422 beyond), not the engine's.
nlohmann::json openapi_document(const StylizeRequest& defaults, const ServeOptions& limits);

inline constexpr const char* kOpenApi = R"JSON({
  "openapi": "3.0.3",
  "info": {"title": "stylize", "version": "1", "description": "Neural style transfer (Gatys et al.) as jobs. With --api-key-file every request needs 'Authorization: Bearer <key>'. Errors are JSON {error, detail}: 400 for a form field no endpoint takes or one given twice, 404 for an unknown path or job, 405 (with Allow) for a method a path does not take, 411 for a POST without a Content-Length (chunked uploads are refused: the size is checked before the body is read)."},
  "components": {
    "schemas": {
      "JobRequest": {"type": "object", "required": ["content"], "properties": {
        "content": {"type": "string", "format": "binary", "description": "the photo"},
        "style": {"type": "string", "format": "binary", "description": "a style image (or style_id); send the part several times (up to 16) to blend styles, weighted by style_blend in the order sent"},
        "style_id": {"type": "string", "description": "a style from GET /v1/styles"},
        "format": {"type": "string", "enum": ["png", "jpg", "webp"]}}},
      "Job": {"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
        "attempt": {"type": "integer", "description": "1, or more when the server stopped (a crash, a kill, a deploy) while an earlier attempt ran and ran it again"},
        "worker": {"type": "string", "description": "with --queue: the worker (host:pid:thread) that runs or ran it"},
        "cancel_requested": {"type": "boolean", "description": "present (true) while a running job's DELETE waits for its next iteration"},
        "progress": {"type": "object", "properties": {"iteration": {"type": "integer"}, "total": {"type": "integer"}, "loss": {"type": "number"}, "eta_seconds": {"type": "number"}}},
        "error": {"type": "string"}, "result_url": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "present when the job runs, but not as its client may think: a start image stretched to the content's shape (init style), a tile that runs the network over more than 4x the image's pixels (on an API that runs no jobs, told once a worker takes the job); one line each, naming form fields"}}},
      "Error": {"type": "object", "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}
    }
  },
  "paths": {
    "/v1/jobs": {"post": {"summary": "Submit a job", "requestBody": {"content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}},
      "responses": {"202": {"description": "queued: {id, status_url, result_url, and warnings (as the Job's) when there are any}"}, "400": {"description": "malformed fields or images, an unknown or repeated field, a layer deeper than this server's weights"}, "401": {"description": "API key missing or wrong"}, "413": {"description": "upload over the limit"}, "422": {"description": "size or iterations over this server's limit, or too large for its memory"}, "429": {"description": "queue full (Retry-After)"}, "503": {"description": "shutting down, or the job could not be stored (storage_failed)"}}}},
    "/v1/jobs/{id}": {
      "get": {"summary": "Job status and progress", "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}, "404": {"description": "unknown or expired"}}},
      "delete": {"summary": "Cancel", "responses": {"200": {"description": "the job after the request"}, "404": {"description": "unknown"}}}},
    "/v1/jobs/{id}/result": {"get": {"summary": "The image", "responses": {"200": {"description": "image/png, image/jpeg or image/webp"}, "409": {"description": "not_ready: queued or running; no_result: failed or cancelled"}, "404": {"description": "unknown or expired"}, "410": {"description": "result_lost: done, but its stored result is gone; submit the job again"}}}},
    "/v1/stylize": {"post": {"summary": "Synchronous, for small jobs: returns the image", "requestBody": {"content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}},
      "responses": {"200": {"description": "the image; an X-Stylize-Warning header per warning (as the Job's warnings)"}, "400": {"description": "as POST /v1/jobs"}, "413": {"description": "upload over the limit"}, "422": {"description": "size or iterations over the synchronous limit"}, "429": {"description": "queue full"}}}},
    "/v1/styles": {"get": {"summary": "Named styles from --styles-dir", "responses": {"200": {"description": "{styles: [{id}]}"}}}},
    "/v1/filters": {"get": {"summary": "Fast filters from --filters-dir", "responses": {"200": {"description": "{filters: [{id, style, width, steps, images_seen, created_by}]}"}}}},
    "/v1/filter": {"post": {"summary": "A photo through a fast filter: one pass, returns the image", "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "required": ["content", "filter"], "properties": {
        "content": {"type": "string", "format": "binary", "description": "the photo"},
        "filter": {"type": "string", "description": "a filter id from GET /v1/filters"},
        "size": {"type": "integer", "minimum": 16, "description": "longest side of the output, px (default: the photo's, capped by the server's --max-size)"},
        "format": {"type": "string", "enum": ["png", "jpg", "webp"]}}}}}},
      "responses": {"200": {"description": "the image"}, "400": {"description": "missing or unknown filter, unreadable image"}, "413": {"description": "upload over the limit"}, "422": {"description": "size over this server's limit"}}}},
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "{status: ok, device, precision}"}, "503": {"description": "draining (after SIGTERM), or queue_unavailable (its Redis does not answer)"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain"}}}},
    "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3"}}}}
  }
})JSON";

}  // namespace stylize::serve
