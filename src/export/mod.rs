pub mod dynapse1;
